"""Methods that match the synthetic images to a class-balanced real batch (DM; DC, DSA, IDC, IDM next)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from lightning_dd.data.protocol import RealDemand
from lightning_dd.methods.base import DistillationModule
from lightning_dd.networks import create_network
from lightning_dd.regularizers.base import Views
from lightning_dd.seeding import STREAM_TRAIN, make_generator

#: the settings of a method's ``batched_classes`` (per-class gradients in one vmapped pass, the loop, or by device)
BATCHED_CHOICES: tuple[bool | str, ...] = (True, False, "auto")


def check_int(name: str, value: Any, low: int = 1, hint: str = "") -> int:
    """``value`` if it is an integer >= ``low``, else a ``ValueError`` naming it (and ``hint``, e.g. other choices)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}{hint}, got {value!r}")
    return value


def check_batched(value: Any) -> None:
    """Refuse a ``batched_classes`` setting outside :data:`BATCHED_CHOICES`."""
    if value not in BATCHED_CHOICES:
        raise ValueError(f"batched_classes must be true, false or 'auto', got {value!r}")


def resolve_batched(setting: bool | str, device: torch.device) -> bool:
    """``batched_classes`` for ``device``: ``"auto"`` batches on accelerators, loops on the CPU (faster there)."""
    return device.type != "cpu" if setting == "auto" else bool(setting)


def matching_network(module: DistillationModule, name: str) -> nn.Module:
    """The method's network ``name`` for its images and classes, built from the run's train stream without touching
    the global RNG (the method re-draws it from ``module.generator`` at every iteration or network)."""
    c, h, w = module.synthetic.image_shape
    return create_network(name, c, module.num_classes, (h, w), generator=make_generator(module.seed, STREAM_TRAIN, 0))


__all__ = [
    "BATCHED_CHOICES",
    "MatchingModule",
    "RealBatches",
    "check_batched",
    "check_int",
    "matching_network",
    "resolve_batched",
]


class RealBatches:
    """Reading the iteration's real batch (:meth:`DistillationModule.real_demand`): for every method that consumes
    class-balanced batches, whether it takes one image step per batch (:class:`MatchingModule`) or one per class
    (IDC overrides ``distill_step`` on ``DistillationModule`` with this mixin)."""

    # provided by DistillationModule (annotations only: nothing here shadows it in the MRO)
    num_classes: int
    _batch_checked: bool
    real_demand: Callable[[], RealDemand]

    def real_by_class(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Reshape a class-sorted, class-balanced batch into ``(K, k, C, H, W)``; its labels are checked once."""
        parts, _, _ = self.split_real(batch)
        if parts.shape[0] != 1:
            raise ValueError(f"{type(self).__name__} expects one class-balanced batch, got {parts.shape[0]} parts")
        return parts[0]

    def split_real(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Split a batch of :meth:`real_demand` into ``(parts (P, K, k, C, H, W), extra (E, C, H, W), extra_labels
        (E,))``: ``P`` class-balanced parts (class ``c`` of part ``p`` in ``parts[p, c]``), then ``E`` extra images.

        The labels are checked on the first call only (the sampler guarantees the order; checking every step would
        synchronise the host with the device).
        """
        images, labels = batch
        demand = self.real_demand()
        n_parts, n_extra = demand.class_batches, demand.extra_images
        balanced = images.shape[0] - n_extra
        per_class = balanced // (n_parts * self.num_classes)
        if per_class < 1 or balanced != per_class * n_parts * self.num_classes:
            raise ValueError(f"the real batch has {images.shape[0]} images, not {n_parts} class-balanced part(s) of "
                             f"the {self.num_classes} classes plus {n_extra} extra images (use RealDataModule / "
                             "ClassBalancedBatchSampler)")
        if not self._batch_checked:
            expected = torch.arange(self.num_classes, device=labels.device).repeat_interleave(per_class)
            if not torch.equal(labels[:balanced], expected.repeat(n_parts)):
                raise ValueError("the real batch must hold the same number of images of every class, sorted by "
                                 "class (use RealDataModule / ClassBalancedBatchSampler)")
            self._batch_checked = True
        parts = images[:balanced].view(n_parts, self.num_classes, per_class, *images.shape[1:])
        return parts, images[balanced:], labels[balanced:]


class MatchingModule(RealBatches, DistillationModule):
    """A method that matches the synthetic images to a class-balanced real batch (DM; DC, DSA, IDC, IDM next).

    :meth:`distill_step` reshapes the batch by class (:meth:`real_by_class`) and takes one image step on
    :meth:`match`; per-class methods override :meth:`distill_step` and call :meth:`image_step` per class.
    """

    def distill_step(self, batch: tuple[Tensor, Tensor]) -> None:
        loss, views = self.match(self.real_by_class(batch))
        self.image_step(loss, views)

    @abstractmethod
    def match(self, real: Tensor) -> tuple[Tensor, Views]:
        """The matching loss of one image step and the views regularizers may use.

        Args:
            real: real images of every class in the data's space, ``(K, k, C, H, W)`` (class ``c`` in ``real[c]``).
        """
