"""Image grids of a synthetic set (one row per class), de-normalised for viewing."""

from __future__ import annotations

import os

import torch
from torch import Tensor
from torchvision.utils import make_grid, save_image

from lightning_dd.artifact import DistilledSet
from lightning_dd._atomic import atomic_write


def viewable_images(distilled: DistilledSet) -> Tensor:
    """The images mapped back to [0, 1] pixels, ``(N, C, H, W)`` (normalised sets are de-normalised; clipped)."""
    images = distilled.images.detach().float().cpu()
    if distilled.space == "normalized":
        mean = torch.tensor(distilled.mean).view(1, -1, 1, 1)
        std = torch.tensor(distilled.std).view(1, -1, 1, 1)
        images = images * std + mean
    return images.clamp(0, 1)


def save_image_grid(distilled: DistilledSet, path: str | os.PathLike[str]) -> Tensor:
    """Write a PNG grid (``ipc`` images per row, one row per class) atomically; return the grid ``(3, H', W')``."""
    images = viewable_images(distilled)
    grid = make_grid(images, nrow=distilled.ipc, padding=1)
    atomic_write(path, lambda tmp: save_image(grid, tmp, format="png"))
    return grid
