"""Option groups shared by the side commands (``--data.*``, ``--trainer.*``), named as in ``lightning-dd fit``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lightning_dd.data.registry import DatasetName
from lightning_dd.data.store import ClassIndexedImages
from lightning_dd.seeding import STREAM_PRETRAIN_SUBSET, make_generator

__all__ = ["DataOptions", "TrainerOptions", "resolve_device", "train_subset"]


@dataclass(frozen=True)
class DataOptions:
    """The real dataset.

    Args:
        dataset: registry name (``digits`` needs no files); for commands that read an artifact, ``None`` = the
            artifact's dataset.
        root: folder of the dataset in its original format or as ``root/train/<class>/*``.
        download: let torchvision download the original files into ``root``.
    """

    dataset: DatasetName | None = None
    root: str | None = None
    download: bool = False


@dataclass(frozen=True)
class TrainerOptions:
    """Where and how student / proxy networks train.

    Args:
        accelerator: ``auto``, ``cpu``, ``gpu``/``cuda``, ...
        devices: number of devices, or a list of device indices.
        precision: e.g. ``32-true``, ``bf16-mixed``, ``16-mixed`` (default: the Trainer's).
        strategy: Lightning strategy (``auto``, ``ddp``, ...).
    """

    accelerator: str = "auto"
    devices: int | str | list[int] = 1
    precision: str | None = None
    strategy: str = "auto"


def resolve_device(trainer: TrainerOptions) -> torch.device:
    """The one device a plain-PyTorch loop (proxy pretraining) runs on, from ``--trainer.accelerator/devices``."""
    accelerator = trainer.accelerator
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator in ("gpu", "cuda"):
        index = trainer.devices[0] if isinstance(trainer.devices, list) else 0
        return torch.device("cuda", index)
    if accelerator != "cpu":
        raise ValueError(f"trainer.accelerator={trainer.accelerator!r} is not supported here; allowed: auto, cpu, "
                         "gpu, cuda")
    return torch.device("cpu")


def train_subset(store: ClassIndexedImages, max_images_per_class: int | None, seed: int) -> torch.Tensor:
    """Indices of the train images a helper trains on: all, or a seeded random ``max_images_per_class`` per class
    (``make_generator(seed, STREAM_PRETRAIN_SUBSET)``, classes in order), for cheaper proxies and experts."""
    if max_images_per_class is None:
        return torch.arange(store.labels.shape[0])
    if isinstance(max_images_per_class, bool) or max_images_per_class < 1:
        raise ValueError(f"max_images_per_class must be >= 1, got {max_images_per_class}")
    generator = make_generator(seed, STREAM_PRETRAIN_SUBSET)
    return torch.cat([idx[torch.randperm(idx.numel(), generator=generator)[:max_images_per_class]]
                      for idx in store.indices_by_class])
