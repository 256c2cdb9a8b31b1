"""Image grids of a synthetic set (``ipc`` images per row, one row per class) as PNG files.

Pure torch + torchvision's ``make_grid``/``save_image``; the caller maps images to ``[0, 1]`` pixels first (the
export callback does it from the artifact's image space).
"""

from __future__ import annotations

import os

from torch import Tensor
from torchvision.utils import make_grid, save_image

from lightning_dd._atomic import atomic_write

__all__ = ["image_grid", "save_image_grid"]


def image_grid(pixels: Tensor, per_row: int) -> Tensor:
    """``(N, C, H, W)`` pixels in ``[0, 1]`` (clipped) -> one ``(3, H', W')`` grid with ``per_row`` images per row."""
    if pixels.dim() != 4:
        raise ValueError(f"pixels must be (N, C, H, W), got shape {tuple(pixels.shape)}")
    if per_row < 1:
        raise ValueError(f"per_row must be >= 1, got {per_row}")
    return make_grid(pixels.detach().float().cpu().clamp(0, 1), nrow=per_row, padding=1)


def save_image_grid(pixels: Tensor, per_row: int, path: str | os.PathLike[str]) -> Tensor:
    """Write :func:`image_grid` of ``pixels`` as a PNG atomically; return the grid ``(3, H', W')``."""
    grid = image_grid(pixels, per_row)
    atomic_write(path, lambda tmp: save_image(grid, tmp, format="png"))
    return grid
