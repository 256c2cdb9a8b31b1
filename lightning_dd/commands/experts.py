"""``lightning-dd experts``: train MTT expert trajectories on the real train split into a sharded buffer directory."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Literal

from lightning_dd._atomic import check_writable
from lightning_dd.commands.options import DataOptions, TrainerOptions, resolve_device, train_subset
from lightning_dd.data import RealDataModule
from lightning_dd.networks import NetworkName
from lightning_dd.pretrained import EXPERT_RECIPE, train_experts

__all__ = ["experts"]


def experts(
    output: str,
    data: DataOptions = DataOptions(dataset="digits"),
    trainer: TrainerOptions = TrainerOptions(),
    space: Literal["normalized", "zca"] = "normalized",
    zca_eps: float = 0.1,
    network: NetworkName = "convnet",
    num_experts: int = 100,
    epochs: int = EXPERT_RECIPE.epochs,
    lr: float = EXPERT_RECIPE.lr,
    momentum: float = EXPERT_RECIPE.momentum,
    weight_decay: float = EXPERT_RECIPE.weight_decay,
    batch_size: int = EXPERT_RECIPE.batch_size,
    dsa_strategy: str = "auto",
    seed: int = 0,
    shard_index: int = 0,
    num_shards: int = 1,
    max_images_per_class: int | None = None,
) -> dict[str, Any]:
    """Train MTT expert trajectories (one shard file per expert; resumable; one JSON line on stdout).

    The reference recipe (GeorgeCazenavette/mtt-distillation ``buffer.py``): ConvNet-3, SGD lr 0.01, no momentum,
    no weight decay, batch 256, per-batch DSA, 50 epochs, 100 experts; the flat parameters are recorded after init
    and after every epoch. Experts already in ``output`` are kept, so an interrupted run resumes; processes given
    ``--shard_index i --num_shards n`` train the experts ``k % n == i`` of one buffer together.

    Args:
        output: the buffer directory (``expert_00000.pt``, ...).
        data: the real dataset whose train split the experts learn.
        trainer: the device the experts train on (``--trainer.accelerator``, ``--trainer.devices``).
        space: image space of the experts' inputs: ``normalized`` or ``zca`` (MTT's ``--zca``; fitted on the train
            split, as ``lightning-dd fit --data.space zca`` does, so the distillation's ZCA matches).
        zca_eps: ZCA regulariser (MTT: 0.1); must equal the distillation's ``data.zca_eps``.
        network: zoo name of the experts (and of the MTT student).
        num_experts: experts in the whole buffer.
        epochs: epochs per expert.
        lr: SGD learning rate (constant).
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        batch_size: batch size.
        dsa_strategy: per-batch DSA strategy; ``auto`` = the dataset's, ``none`` = no augmentation.
        seed: the buffer's seed (expert ``k`` depends on ``seed`` and ``k`` only).
        shard_index: which share of the experts this process trains.
        num_shards: how many processes share the experts.
        max_images_per_class: train on a seeded random subset of this many images per class (cheaper experts; the
            ZCA is still fitted on the whole train split).
    """
    recipe = dataclasses.replace(EXPERT_RECIPE, epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay,
                                 batch_size=batch_size)  # validates the values before any data is read
    check_writable(f"{output}/.probe", "experts --output")
    device = resolve_device(trainer)
    real = RealDataModule(data.dataset or "digits", root=data.root, download=data.download, space=space,
                          zca_eps=zca_eps)
    real.prepare_data()
    store = real.load_train()
    indices = train_subset(store, max_images_per_class, seed)
    strategy = real.info.dsa_strategy if dsa_strategy == "auto" else dsa_strategy
    recipe = dataclasses.replace(recipe, dsa_strategy=strategy)
    zca = real.fit_zca() if space == "zca" else None
    test = real.test_split()
    paths = train_experts(
        real.encode(store.images[indices]), store.labels[indices], output, dataset=real.info.name,
        num_classes=real.num_classes,
        mean=real.mean, std=real.std, space=space, zca_fingerprint=None if zca is None else zca.fingerprint(),
        network=network, num_experts=num_experts, recipe=recipe, seed=seed, shard_index=shard_index,
        num_shards=num_shards, test=(real.encode(test.images), test.labels), device=device,
        log=lambda message: print(message, file=sys.stderr, flush=True),
    )
    return {"buffer": output, "experts": [p.name for p in paths], "dataset": real.info.name, "network": network,
            "space": space, "epochs": epochs, "dsa_strategy": strategy, "train_images": int(indices.numel())}
