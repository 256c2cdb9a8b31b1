"""The data layer's value types, with no imports from the rest of ``lightning_dd.data``.

:class:`DatasetInfo` (static description of a dataset), :class:`LabeledImages` (one split in memory), the default DSA
strategies and :func:`normalize`. Everything else in ``lightning_dd.data`` builds on this module; the registry
re-exports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "DEFAULT_DSA_STRATEGY",
    "DIGIT_DSA_STRATEGY",
    "DatasetInfo",
    "LabeledImages",
    "normalize",
]

#: Default DSA strategy of digit datasets (no horizontal flip: it changes a digit's meaning).
DIGIT_DSA_STRATEGY = "color_crop_cutout_scale_rotate"
#: Default DSA strategy of natural-image datasets.
DEFAULT_DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset.

    Attributes:
        name: registry key, e.g. ``"cifar10"``.
        channels: number of image channels ``C``.
        image_size: ``(H, W)``.
        num_classes: number of classes (``len(class_names)``).
        mean: per-channel mean (length ``C``) of ``x / 255``, for :func:`normalize`.
        std: per-channel standard deviation (length ``C``) of ``x / 255``.
        class_names: class names in label-index order.
        dsa_strategy: default DSA augmentation strategy string.
    """

    name: str
    channels: int
    image_size: tuple[int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    dsa_strategy: str

    def __post_init__(self) -> None:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"DatasetInfo {self.name!r}: mean/std need {self.channels} values, got {self.mean} / {self.std}"
            )
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"DatasetInfo {self.name!r}: {len(self.class_names)} class names for {self.num_classes} classes"
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return (self.channels, *self.image_size)


def fixed_info(
    name: str,
    channels: int,
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    class_names: tuple[str, ...],
    dsa: str,
) -> DatasetInfo:
    """:class:`DatasetInfo` of a dataset with square ``size x size`` images and a fixed class list."""
    return DatasetInfo(name, channels, (size, size), len(class_names), mean, std, class_names, dsa)


@dataclass
class LabeledImages:
    """One split of a dataset, fully in memory.

    Attributes:
        images: ``uint8`` tensor ``(N, C, H, W)``.
        labels: ``int64`` tensor ``(N,)`` with values in ``[0, len(class_names))``.
        class_names: class names in label-index order.
    """

    images: Tensor
    labels: Tensor
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 ({self.images.shape[0]},), got {self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])


def normalize(images: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """Normalize images per channel, on their own device.

    Args:
        images: ``(..., C, H, W)``; ``uint8`` in ``[0, 255]`` (divided by 255 first) or floating point in ``[0, 1]``.
        mean: ``C`` per-channel means.
        std: ``C`` per-channel standard deviations.

    Returns:
        ``float32`` tensor of the same shape: ``(x - mean) / std`` with ``x = images / 255`` for ``uint8`` input.
    """
    if images.dim() < 3:
        raise ValueError(f"images must be (..., C, H, W), got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        x = images.to(torch.float32).div_(255.0)
    elif images.is_floating_point():
        x = images.to(torch.float32)
    else:
        raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(-1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(-1, 1, 1)
    channels = x.shape[-3]
    if m.shape[0] != channels or s.shape[0] != channels:
        raise ValueError(f"mean/std have {m.shape[0]}/{s.shape[0]} values for {channels}-channel images")
    return (x - m) / s
