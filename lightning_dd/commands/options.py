"""Option groups shared by the side commands (``--data.*``, ``--trainer.*``), named as in ``lightning-dd fit``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lightning_dd.data.registry import DatasetName

__all__ = ["DataOptions", "TrainerOptions", "resolve_device"]


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
