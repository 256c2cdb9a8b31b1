"""The synthetic set: the learnable images of a distillation run, as a plain ``nn.Module``.

No Lightning here: a :class:`SyntheticSet` can be optimised by any loop. Its shape is fixed in ``__init__`` so that
checkpoints load into a freshly constructed module; values are filled later (from real images or noise).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

ImageSpace = Literal["normalized", "pixels", "zca"]
IMAGE_SPACES: tuple[str, ...] = ("normalized", "pixels", "zca")


class SyntheticSet(nn.Module):
    """``num_classes * ipc`` learnable images in class-sorted order.

    Args:
        num_classes: number of classes ``K``.
        ipc: images per class (>= 1).
        image_shape: ``(C, H, W)`` of one stored image.
        learn_lr: also hold a learnable step size (MTT-style), initialised to ``init_lr``.
        init_lr: initial value of the learnable step size.
        soft_labels: also hold learnable soft labels (logits, ``(K*ipc, K)``), initialised to one-hot scaled by 1.
        space: what the pixel values mean: ``"normalized"`` (mean/std normalised, the default of DM/DC/DSA/IDM),
            ``"pixels"`` (raw [0, 1], IDC) or ``"zca"`` (ZCA-whitened, MTT).

    Attributes:
        images: ``nn.Parameter`` of shape ``(K*ipc, C, H, W)``; rows ``[c*ipc:(c+1)*ipc]`` belong to class ``c``.
        labels: int64 buffer ``(K*ipc,)`` = ``[0]*ipc + [1]*ipc + ...``.
        lr: scalar ``nn.Parameter`` or ``None``.
        soft_labels: ``nn.Parameter`` ``(K*ipc, K)`` or ``None``.
    """

    def __init__(
        self,
        num_classes: int,
        ipc: int,
        image_shape: tuple[int, int, int],
        learn_lr: bool = False,
        init_lr: float = 0.01,
        soft_labels: bool = False,
        space: ImageSpace = "normalized",
    ) -> None:
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if int(ipc) < 1:
            raise ValueError(f"ipc (images per class) must be >= 1, got {ipc}")
        if len(image_shape) != 3 or any(int(s) < 1 for s in image_shape):
            raise ValueError(f"image_shape must be (C, H, W) with positive sizes, got {image_shape}")
        if space not in IMAGE_SPACES:
            raise ValueError(f"space must be one of {IMAGE_SPACES}, got {space!r}")
        self.num_classes = int(num_classes)
        self.ipc = int(ipc)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.space = space
        n = self.num_classes * self.ipc
        self.images = nn.Parameter(torch.zeros(n, *self.image_shape))
        self.register_buffer("labels", torch.arange(self.num_classes).repeat_interleave(self.ipc))
        self.lr = nn.Parameter(torch.tensor(float(init_lr))) if learn_lr else None
        self.soft_labels = (
            nn.Parameter(nn.functional.one_hot(self.labels, self.num_classes).float()) if soft_labels else None
        )

    def __len__(self) -> int:
        return self.images.shape[0]

    def by_class(self) -> Tensor:
        """The images as ``(K, ipc, C, H, W)`` (a view; gradients flow)."""
        return self.images.view(self.num_classes, self.ipc, *self.image_shape)

    def class_images(self, class_index: int) -> Tensor:
        """Images of one class, ``(ipc, C, H, W)`` (a view)."""
        start = class_index * self.ipc
        return self.images[start : start + self.ipc]

    @torch.no_grad()
    def fill_(self, images: Tensor) -> None:
        """Overwrite the values with ``images`` of shape ``(K*ipc, C, H, W)`` (class-sorted)."""
        if tuple(images.shape) != tuple(self.images.shape):
            raise ValueError(f"expected images of shape {tuple(self.images.shape)}, got {tuple(images.shape)}")
        self.images.copy_(images)

    @torch.no_grad()
    def fill_noise_(self, generator: torch.Generator) -> None:
        """Fill with standard-normal noise drawn from ``generator`` (the reference ``init='noise'``)."""
        noise = torch.randn(self.images.shape, generator=generator, device=generator.device)
        self.images.copy_(noise)
