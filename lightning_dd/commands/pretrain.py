"""``lightning-dd pretrain``: train K proxy networks on the real train split and write one pool file."""

from __future__ import annotations

import sys
from typing import Any

from lightning_dd._atomic import check_writable, write_or_fallback
from lightning_dd.commands.options import DataOptions, TrainerOptions, resolve_device, train_subset
from lightning_dd.data import RealDataModule
from lightning_dd.pretrained import DEFAULT_PRETRAIN_RECIPE, PRETRAIN_RECIPES, pretrain_proxies

__all__ = ["pretrain"]


def pretrain(
    output: str,
    data: DataOptions = DataOptions(dataset="digits"),
    trainer: TrainerOptions = TrainerOptions(),
    recipe: str = DEFAULT_PRETRAIN_RECIPE,
    num_models: int = 5,
    epochs: int | None = None,
    network: str | None = None,
    lr: float | None = None,
    momentum: float | None = None,
    weight_decay: float | None = None,
    batch_size: int | None = None,
    max_images_per_class: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train the proxy networks of the CMI/IID regularizers and write one pool file (one JSON line on stdout).

    ``--recipe cmi`` (default; ndhg1213/CMIDD, weight decay 1e-3) or ``--recipe iid`` (VincenDen/IID, 5e-4) sets
    the network, epochs and SGD settings; an explicit ``--epochs``, ``--weight_decay``, ... overrides its value.

    Args:
        output: the pool file to write.
        data: the real dataset whose train split the proxies learn.
        trainer: the device the proxies train on (``--trainer.accelerator``, ``--trainer.devices``).
        recipe: pretraining recipe: ``cmi`` or ``iid``.
        num_models: K proxies (official: 1000; a few suffice).
        epochs: epochs per proxy (default: the recipe's).
        network: zoo name (default: the recipe's).
        lr: constant SGD learning rate (default: the recipe's).
        momentum: SGD momentum (default: the recipe's).
        weight_decay: SGD weight decay (default: the recipe's).
        batch_size: batch size (default: the recipe's).
        max_images_per_class: train on a seeded random subset of this many images per class (cheaper proxies).
        seed: seed of the proxies and of the subset.
    """
    if recipe not in PRETRAIN_RECIPES:  # before reading any data
        raise ValueError(f"unknown --recipe {recipe!r}; allowed: {', '.join(PRETRAIN_RECIPES)}")
    if max_images_per_class is not None and max_images_per_class < 1:
        raise ValueError(f"max_images_per_class must be >= 1, got {max_images_per_class}")
    check_writable(output, "pool --output")  # now, not after the proxies trained
    device = resolve_device(trainer)
    real = RealDataModule(data.dataset or "digits", root=data.root, download=data.download)
    real.prepare_data()
    store = real.load_train()
    indices = train_subset(store, max_images_per_class, seed)
    pool = pretrain_proxies(
        real.normalize(store.images[indices]), store.labels[indices], dataset=real.info.name,
        num_classes=real.num_classes, mean=real.mean, std=real.std, space="normalized", num_models=num_models,
        recipe=recipe, epochs=epochs, network=network, lr=lr, momentum=momentum, weight_decay=weight_decay,
        batch_size=batch_size, seed=seed, device=str(device),
        log=lambda message: print(message, file=sys.stderr, flush=True),  # diagnostics: stderr; the result: stdout
    )
    path = write_or_fallback(output, pool.save, "proxy pool")
    return {"pool": str(path), "dataset": pool.dataset, "network": pool.network, "num_models": len(pool),
            "recipe": recipe, "weight_decay": pool.info["weight_decay"], "train_accuracy": pool.info["train_accuracy"]}
