"""The synthetic set: the learnable images of a distillation run, as a plain ``nn.Module``.

No Lightning here: a :class:`SyntheticSet` can be optimised by any loop. Its shape is fixed in ``__init__`` so that
checkpoints load into a freshly constructed module; values are filled later (from real images or noise).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ImageSpace = Literal["normalized", "pixels", "zca"]
IMAGE_SPACES: tuple[str, ...] = ("normalized", "pixels", "zca")
GridLayout = Literal["multi_formation", "partition"]
GRID_LAYOUTS: tuple[str, ...] = ("multi_formation", "partition")


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

    labels: Tensor  # a registered buffer (nn.Module.__getattr__ would type it Tensor | Module)

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
        self.image_shape: tuple[int, int, int] = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
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

    @property
    def factor(self) -> int:
        """Training images per stored image along each side (1: each stored image is one training image)."""
        return 1

    def decode(self) -> tuple[Tensor, Tensor]:
        """The training images and their labels: ``(images (M, C, H, W), labels (M,))`` (here ``M = K*ipc``).

        The identity for a plain set (the stored images are the training images; gradients flow).
        """
        return self.images, self.labels

    def decode_class(self, class_index: int) -> tuple[Tensor, Tensor]:
        """:meth:`decode` restricted to one class's stored images (per-class image steps)."""
        start = class_index * self.ipc
        return self.images[start : start + self.ipc], self.labels[start : start + self.ipc]

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


def decode_grid(images: Tensor, factor: int, layout: GridLayout = "multi_formation",
                size: tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
    """Split every stored image into a ``factor x factor`` grid of crops and upsample each crop (bilinear).

    Args:
        images: ``(N, C, H, W)`` stored images.
        factor: crops per side ``f`` (``f = 1`` returns ``images`` and the identity order).
        layout: ``"multi_formation"`` (IDC, snu-mllab/Efficient-Dataset-Condensation ``decode_zoom``): crops of side
            ``ceil(H / f)`` (the image is padded with 0.5 on the bottom/right when ``H % f != 0``), taken row by row
            (top-left, top-right, bottom-left, bottom-right for ``f = 2``); ``"partition"`` (IDM,
            uitrbn/IDM ``number_sign_augment``): ``f = 2`` only, quadrants taken column by column (top-left,
            bottom-left, top-right, bottom-right).
        size: output ``(H', W')`` of each crop (default: the stored ``(H, W)``).

    Returns:
        ``(decoded (f*f*N, C, H', W'), source (f*f*N,))``: crop-major order (all images' first crop, then all
        images' second crop, ...) as both references; ``source[j]`` is the stored image decoded image ``j`` comes
        from (index labels with it). Differentiable w.r.t. ``images``.
    """
    if layout not in GRID_LAYOUTS:
        raise ValueError(f"layout must be one of {GRID_LAYOUTS}, got {layout!r}")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    n, _, h, w = images.shape
    source = torch.arange(n, device=images.device)
    if factor == 1:
        return images, source
    out_size = (h, w) if size is None else (int(size[0]), int(size[1]))
    if layout == "partition":
        if factor != 2 or h % 2 or w % 2:
            raise ValueError(f"the 'partition' layout splits even-sized images into 2x2, got factor {factor}, "
                             f"size {h}x{w}")
        hh, hw = h // 2, w // 2
        crops = [images[:, :, :hh, :hw], images[:, :, hh:, :hw], images[:, :, :hh, hw:], images[:, :, hh:, hw:]]
    else:
        side_h, side_w = math.ceil(h / factor), math.ceil(w / factor)
        pad_h, pad_w = side_h * factor - h, side_w * factor - w
        padded = F.pad(images, (0, pad_w, 0, pad_h), value=0.5) if pad_h or pad_w else images
        crops = [padded[:, :, i * side_h : (i + 1) * side_h, j * side_w : (j + 1) * side_w]
                 for i in range(factor) for j in range(factor)]
    decoded = F.interpolate(torch.cat(crops), size=out_size, mode="bilinear", align_corners=False)
    return decoded, source.repeat(factor * factor)


def encode_partition(draws: Tensor) -> Tensor:
    """IDM's real initialisation (``uitrbn/IDM`` ``init='real'`` with ``--aug``): four images into each stored image.

    Quadrant ``q`` of stored image ``m`` is ``draws[q, m]`` downscaled by 2 (bilinear, ``align_corners=False``, the
    reference's ``downscale(x, 0.5)``), quadrants in :func:`decode_grid`'s ``"partition"`` order (top-left,
    bottom-left, top-right, bottom-right), so ``decode_grid(encode_partition(d), 2, "partition")`` returns
    ``draws[0]``, ``draws[1]``, ... (each through a 2x down- and up-sampling).

    Args:
        draws: ``(4, N, C, H, W)`` with even ``H`` and ``W`` (the reference draws each quadrant's ``N`` images
            independently).

    Returns:
        ``(N, C, H, W)``.
    """
    if draws.dim() != 5 or draws.shape[0] != 4 or draws.shape[-1] % 2 or draws.shape[-2] % 2:
        raise ValueError(f"encode_partition needs (4, N, C, H, W) images with even H and W, got shape "
                         f"{tuple(draws.shape)}")
    _, n, c, h, w = draws.shape
    small = F.interpolate(draws.flatten(0, 1), scale_factor=0.5, mode="bilinear", align_corners=False)
    small = small.view(4, n, c, h // 2, w // 2)
    out = draws.new_empty(n, c, h, w)
    hh, hw = h // 2, w // 2
    for q, (top, left) in enumerate(((0, 0), (hh, 0), (0, hw), (hh, hw))):
        out[:, :, top : top + hh, left : left + hw] = small[q]
    return out


class FactorizedSyntheticSet(SyntheticSet):
    """A synthetic set whose stored images each hold ``factor x factor`` training images (IDC, IDM).

    Args: those of :class:`SyntheticSet`, plus
        factor: crops per side (IDC ``-f 2``; IDM's partition is 2).
        layout: see :func:`decode_grid` (``"multi_formation"`` = IDC, ``"partition"`` = IDM).

    :meth:`decode` returns ``K * ipc * factor**2`` training images of the stored resolution, class-sorted within
    each crop position as :func:`decode_grid` orders them, and their labels.
    """

    def __init__(self, num_classes: int, ipc: int, image_shape: tuple[int, int, int], factor: int = 2,
                 layout: GridLayout = "multi_formation", **kwargs: Any) -> None:
        super().__init__(num_classes, ipc, image_shape, **kwargs)
        decode_grid(torch.zeros(1, *self.image_shape), factor, layout)  # validates factor/layout for this shape
        self._factor = factor
        self.layout: GridLayout = layout

    @property
    def factor(self) -> int:
        return self._factor

    def decode(self) -> tuple[Tensor, Tensor]:
        decoded, source = decode_grid(self.images, self.factor, self.layout)
        return decoded, self.labels[source]

    def decode_class(self, class_index: int) -> tuple[Tensor, Tensor]:
        start = class_index * self.ipc
        decoded, source = decode_grid(self.images[start : start + self.ipc], self.factor, self.layout)
        return decoded, self.labels[start : start + self.ipc][source]
