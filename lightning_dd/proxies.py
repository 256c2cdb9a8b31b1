"""Pools of pretrained proxy networks (the frozen feature extractors of the CMI and IID regularizers).

The official recipe (CMIDD / IID ``pre_model.py``): K instance-norm ResNet18s, each trained 40 epochs on the real
train split with SGD lr 0.01 (constant), momentum 0.9, weight decay 5e-4, batch 256, no augmentation; the
distillation samples one at random per step. A pool is ONE file recording the dataset, normalisation and
resolution it was trained for, so a regularizer can refuse a pool made for other data. Loading it builds the K
networks once on the target device; they are held in a plain list (never registered submodules: no checkpoint
bloat, no DDP broadcast, style.md pitfall 19).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightning_dd._atomic import atomic_torch_save
from lightning_dd.networks import create_network
from lightning_dd.seeding import make_generator

FORMAT = "lightning_dd.proxy_pool"
FORMAT_VERSION = 1
STREAM_PROXY_TRAIN = 11  # seeds of proxy pretraining (initialisation, shuffling)


@dataclass
class ProxyPool:
    """K frozen networks of one architecture for one dataset / resolution / normalisation.

    Attributes:
        networks: the K networks (eval mode, ``requires_grad=False``).
        network: zoo name of the architecture.
        dataset, image_shape, num_classes, mean, std: what the proxies were trained on (inputs must be normalised
            with these ``mean``/``std``).
        info: the recipe (epochs, lr, ...), seed and per-proxy train accuracy.
    """

    networks: list[nn.Module]
    network: str
    dataset: str
    image_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.networks)

    def sample(self, generator: torch.Generator) -> nn.Module:
        """One proxy chosen uniformly with ``generator``."""
        index = int(torch.randint(len(self.networks), (1,), generator=generator))
        return self.networks[index]

    def check_compatible(self, dataset: str, image_shape: tuple[int, ...], mean: tuple[float, ...],
                         std: tuple[float, ...], source: str = "the pool") -> None:
        """Refuse a pool trained for another dataset, resolution or normalisation (clear error naming both)."""
        problems = []
        if dataset != self.dataset:
            problems.append(f"dataset {self.dataset!r} (run: {dataset!r})")
        if tuple(image_shape) != tuple(self.image_shape):
            problems.append(f"image shape {tuple(self.image_shape)} (run: {tuple(image_shape)})")
        if not _close(mean, self.mean) or not _close(std, self.std):
            problems.append(f"normalisation mean={list(self.mean)} std={list(self.std)} "
                            f"(run: mean={list(mean)} std={list(std)})")
        if problems:
            raise ValueError(f"{source} was made for {'; '.join(problems)}: pretrain a pool for this data with "
                             f"`lightning-dd pretrain --data.dataset {dataset} ...`")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "network": self.network,
            "dataset": self.dataset,
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "mean": list(self.mean),
            "std": list(self.std),
            "info": self.info,
            "state_dicts": [{k: v.detach().cpu() for k, v in net.state_dict().items()} for net in self.networks],
        }

    def save(self, path: str | Path) -> Path:
        """Write the pool atomically."""
        return atomic_torch_save(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> ProxyPool:
        """Read a pool file and build its networks on ``device`` (frozen, eval mode)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"proxy pool {str(path)!r} does not exist: create one with `lightning-dd pretrain --output {path}`"
            )
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{str(path)!r} is not a readable lightning_dd proxy pool ({err})") from err
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} is not a lightning_dd proxy pool (expected format={FORMAT!r})")
        c, h, w = d["image_shape"]
        networks = []
        for state in d["state_dicts"]:
            with torch.random.fork_rng(devices=[]):
                net = create_network(d["network"], c, d["num_classes"], (h, w))
            net.load_state_dict(state)
            networks.append(freeze(net.to(device)))
        return cls(networks=networks, network=d["network"], dataset=d["dataset"], image_shape=(c, h, w),
                   num_classes=d["num_classes"], mean=tuple(d["mean"]), std=tuple(d["std"]), info=d.get("info", {}))


def freeze(net: nn.Module) -> nn.Module:
    """Eval mode, no parameter gradients (inputs still receive gradients); drops gradients left by training."""
    net.eval()
    net.requires_grad_(False)
    for param in net.parameters():
        param.grad = None
    return net


def _close(a: tuple[float, ...] | list[float], b: tuple[float, ...] | list[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6) for x, y in zip(a, b, strict=True))


def pretrain_proxies(
    train_images: Tensor,
    train_labels: Tensor,
    *,
    dataset: str,
    num_classes: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    num_models: int = 5,
    epochs: int = 40,
    network: str = "resnet18",
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 256,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log: Any = print,
) -> ProxyPool:
    """Train ``num_models`` proxies with the official recipe (constant lr, no augmentation) and return the pool.

    Args:
        train_images: normalised ``(N, C, H, W)`` float32; train_labels: int64 ``(N,)``.
        dataset, num_classes, mean, std: recorded in the pool (the normalisation of ``train_images``).
        log: called with one progress line per proxy.
    """
    if num_models < 1 or epochs < 1:
        raise ValueError(f"num_models and epochs must be >= 1, got {num_models} and {epochs}")
    device = torch.device(device)
    c, h, w = train_images.shape[1:]
    networks, accuracies = [], []
    n = train_images.shape[0]
    for k in range(num_models):
        generator = make_generator(seed, STREAM_PROXY_TRAIN, k)
        net = create_network(network, c, num_classes, (h, w), generator=generator).to(device)
        optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
        net.train()
        correct = 0
        for _ in range(epochs):
            correct = 0
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                x, y = train_images[idx].to(device), train_labels[idx].to(device)
                logits = net(x)
                loss = nn.functional.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                correct += int((logits.argmax(1) == y).sum())
        accuracies.append(correct / n)
        log(f"[lightning_dd] proxy {k + 1}/{num_models} ({network}): last-epoch train accuracy "
            f"{100 * correct / n:.1f}%")
        networks.append(freeze(net))
    info = {"epochs": epochs, "lr": lr, "momentum": momentum, "weight_decay": weight_decay, "batch_size": batch_size,
            "augmentation": "none", "seed": seed, "train_accuracy": accuracies, "train_images": n}
    return ProxyPool(networks=networks, network=network, dataset=dataset, image_shape=(c, h, w),
                     num_classes=num_classes, mean=tuple(mean), std=tuple(std), info=info)


def to_proxy_input(images: Tensor, space: str, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Map synthetic images from the method's space to the proxies' input normalisation ``(x - mean) / std``.

    ``"normalized"`` images are already there (the pool's statistics were checked equal to the run's); ``"pixels"``
    ([0, 1], IDC) are normalised here — the official CMI-IDC code feeds raw pixels to a ResNet trained on normalised
    images, a bug we do not copy. ZCA-space images would need a pool trained on ZCA data: refused.
    """
    if space == "normalized":
        return images
    if space == "pixels":
        m = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        s = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        return (images - m) / s
    raise ValueError(f"proxy regularizers need images in 'normalized' or 'pixels' space, got {space!r} "
                     "(a ZCA-space run needs proxies trained on ZCA-whitened data)")
