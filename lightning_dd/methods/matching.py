"""Methods that match the synthetic images to a class-balanced real batch (DM; DC, DSA, IDC, IDM next)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor

from lightning_dd.data.protocol import RealDemand
from lightning_dd.methods.base import DistillationModule
from lightning_dd.regularizers.base import Views

__all__ = ["MatchingModule", "RealBatches"]


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
