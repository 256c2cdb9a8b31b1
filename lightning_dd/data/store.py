"""Class-indexed in-memory image store: the train split loaded once, sampled per class."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ClassIndexedImages"]


class ClassIndexedImages:
    """Images of one split with the indices of every class precomputed.

    Args:
        images: ``uint8`` tensor ``(N, C, H, W)``.
        labels: integer tensor ``(N,)`` with values in ``[0, num_classes)`` (stored as ``int64``).
        num_classes: number of classes.

    Attributes:
        images: ``uint8 (N, C, H, W)``.
        labels: ``int64 (N,)``.
        num_classes: number of classes.
        indices_by_class: ``num_classes`` ``int64`` tensors; entry ``c`` holds the indices (ascending) of class ``c``.
    """

    def __init__(self, images: Tensor, labels: Tensor, num_classes: int) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.dim() != 1 or labels.shape[0] != images.shape[0] or labels.is_floating_point():
            raise ValueError(
                f"labels must be an integer tensor ({images.shape[0]},), got {labels.dtype} {tuple(labels.shape)}"
            )
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        labels = labels.to(torch.int64)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]")
        self.images = images
        self.labels = labels
        self.num_classes = int(num_classes)
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=num_classes).tolist()
        self.indices_by_class: list[Tensor] = [chunk.clone() for chunk in torch.split(order, counts)]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def class_sizes(self) -> list[int]:
        """Number of images of each class, in class order."""
        return [int(idx.numel()) for idx in self.indices_by_class]

    def sample(self, class_index: int, n: int, generator: torch.Generator) -> Tensor:
        """``n`` distinct random images of class ``class_index`` (those of :meth:`sample_indices`)."""
        return self.images[self.sample_indices(class_index, n, generator)]

    def sample_indices(self, class_index: int, n: int, generator: torch.Generator) -> Tensor:
        """Indices (into :attr:`images`) of ``n`` distinct random images of class ``class_index``.

        Args:
            class_index: class in ``[0, num_classes)``.
            n: number of images, at most the class size.
            generator: CPU ``torch.Generator`` driving the choice.

        Returns:
            ``int64`` tensor ``(n,)``.

        Raises:
            ValueError: ``n`` exceeds the class size (both are named), or ``class_index`` / ``n`` out of range.
        """
        if not 0 <= class_index < self.num_classes:
            raise ValueError(f"class_index must lie in [0, {self.num_classes}), got {class_index}")
        idx = self.indices_by_class[class_index]
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n > idx.numel():
            raise ValueError(f"Cannot sample {n} distinct images from class {class_index}: it has {idx.numel()} images")
        return idx[torch.randperm(idx.numel(), generator=generator)[:n]]
