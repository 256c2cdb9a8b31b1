"""Methods that match the synthetic images to a class-balanced real batch (DM; DC, DSA, IDC, IDM next)."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from lightning_dd.methods.base import DistillationModule
from lightning_dd.regularizers.base import Views

__all__ = ["MatchingModule"]


class MatchingModule(DistillationModule):
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

    def real_by_class(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Reshape a class-sorted, class-balanced batch into ``(K, k, C, H, W)``; its labels are checked once."""
        images, labels = batch
        per_class = images.shape[0] // self.num_classes
        if per_class < 1 or images.shape[0] != per_class * self.num_classes:
            raise ValueError(f"the real batch has {images.shape[0]} images, not a multiple of the "
                             f"{self.num_classes} classes (use RealDataModule / ClassBalancedBatchSampler)")
        if not self._batch_checked:  # the sampler guarantees the order; checking every step would sync the host
            expected = torch.arange(self.num_classes, device=labels.device).repeat_interleave(per_class)
            if not torch.equal(labels, expected):
                raise ValueError("the real batch must hold the same number of images of every class, sorted by "
                                 "class (use RealDataModule / ClassBalancedBatchSampler)")
            self._batch_checked = True
        return images.view(self.num_classes, per_class, *images.shape[1:])
