"""What a distillation method needs from the data side, and the ``init="real"`` draw built on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from lightning_dd.data.types import DatasetInfo
from lightning_dd.seeding import STREAM_INIT, make_generator

__all__ = ["NO_REAL_IMAGES", "RealDataSource", "RealDemand", "random_real_indices", "random_real_subset"]


@dataclass(frozen=True)
class RealDemand:
    """The real images one distillation iteration consumes, as one batch of the data module.

    The batch holds ``class_batches`` class-balanced parts (``batch_real`` images of every class each, class-sorted,
    drawn independently: DC/DSA draw a fresh real batch at every outer step) followed by ``extra_images`` uniformly
    random train images (IDC trains its network on real data between image steps). The default -- one part, no
    extra -- is the plain class-balanced batch of DM. :data:`NO_REAL_IMAGES` (no part, no extra) gives an empty batch
    per iteration: MTT, whose real data are the expert trajectories.

    Attributes:
        class_batches: class-balanced parts per batch (>= 0).
        extra_images: uniformly random train images after them (>= 0, distinct within a batch).
    """

    class_batches: int = 1
    extra_images: int = 0

    def __post_init__(self) -> None:
        for name, low in (("class_batches", 0), ("extra_images", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"RealDemand.{name} must be an integer >= {low}, got {value!r}")


#: an iteration that reads no real images (its batch is empty)
NO_REAL_IMAGES = RealDemand(class_batches=0)


@runtime_checkable
class RealDataSource(Protocol):
    """What a method needs from the data side (:class:`~lightning_dd.data.real.RealDataModule` provides it).

    ``info`` must be in memory (a plain attribute or property, no I/O); ``real_images`` returns ``n`` distinct random
    train images of class ``class_index``, normalized ``float32 (n, C, H, W)``, drawn with ``generator``.
    """

    @property
    def info(self) -> DatasetInfo: ...

    def real_images(self, class_index: int, n: int, generator: torch.Generator) -> Tensor: ...


def random_real_subset(source: RealDataSource, num_classes: int, ipc: int, seed: int) -> Tensor:
    """``ipc`` distinct random real images of every class, class-sorted, ``(K*ipc, C, H, W)``, fixed by ``seed``.

    This is the ``init="real"`` starting point of every method and the random baseline: one generator
    ``make_generator(seed, STREAM_INIT)`` drives the draws of class 0, then class 1, and so on.
    """
    generator = make_generator(seed, STREAM_INIT)
    return torch.cat([source.real_images(c, ipc, generator) for c in range(num_classes)])


def random_real_indices(source: RealDataSource, num_classes: int, ipc: int, seed: int) -> list[int] | None:
    """The train-split indices of the images :func:`random_real_subset` draws (the same draws, replayed), or
    ``None`` for a source that does not expose its store (``store.sample_indices``)."""
    try:
        sample_indices = getattr(source, "store").sample_indices  # noqa: B009  (not part of the protocol)
    except (AttributeError, RuntimeError):  # no store, or not loaded
        return None
    generator = make_generator(seed, STREAM_INIT)
    return [int(i) for c in range(num_classes) for i in sample_indices(c, ipc, generator)]
