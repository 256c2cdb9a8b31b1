"""Readable image grids of a synthetic set (one row per class, captioned) and side-by-side comparisons, as PNG.

Pure torch + torchvision + Pillow; the caller maps images to ``[0, 1]`` pixels first (the export callback does it
from the artifact's image space). Small images are enlarged by an integer factor (nearest neighbour, so the pixels
stay visible) until the grid's longer side is at least ``min_long_side`` pixels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor, to_pil_image
from torchvision.utils import make_grid

from lightning_dd._atomic import atomic_write

__all__ = ["image_grid", "plot_curves", "save_grid", "side_by_side"]

_FONT_SIZE = 12
_MARGIN = 4


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=_FONT_SIZE)


def image_grid(pixels: Tensor, per_row: int, class_names: Sequence[str] | None = None, title: str | None = None,
               min_long_side: int = 256) -> Tensor:
    """``(N, C, H, W)`` pixels in ``[0, 1]`` (clipped) -> one RGB ``(3, H', W')`` float grid.

    ``per_row`` images per row (row ``r`` holds class ``r`` when the set is class-sorted with ``per_row`` = IPC);
    ``class_names`` caption the rows on the left; ``title`` goes on top; the image part is enlarged by an integer
    factor until its longer side is ``>= min_long_side`` pixels.
    """
    if pixels.dim() != 4:
        raise ValueError(f"pixels must be (N, C, H, W), got shape {tuple(pixels.shape)}")
    if per_row < 1:
        raise ValueError(f"per_row must be >= 1, got {per_row}")
    grid = make_grid(pixels.detach().float().cpu().clamp(0, 1), nrow=per_row, padding=1, pad_value=1.0)
    factor = max(1, math.ceil(min_long_side / max(grid.shape[1:])))
    grid = grid.repeat_interleave(factor, 1).repeat_interleave(factor, 2)
    if not class_names and not title:
        return grid
    picture = to_pil_image(grid)
    font = _font()
    measure = ImageDraw.Draw(picture)
    rows = math.ceil(pixels.shape[0] / per_row)
    names = list(class_names or [])[:rows]
    left = max((int(measure.textlength(n, font=font)) for n in names), default=-2 * _MARGIN) + 2 * _MARGIN
    top = _FONT_SIZE + 2 * _MARGIN if title else 0
    canvas = Image.new("RGB", (max(picture.width + left, int(measure.textlength(title or "", font=font)) + left),
                               picture.height + top), "white")
    canvas.paste(picture, (left, top))
    draw = ImageDraw.Draw(canvas)
    row_height = picture.height / rows
    for r, name in enumerate(names):
        draw.text((_MARGIN, top + r * row_height + (row_height - _FONT_SIZE) / 2), name, fill="black", font=font)
    if title:
        draw.text((left, _MARGIN), title, fill="black", font=font)
    return pil_to_tensor(canvas).float() / 255


def side_by_side(grids: Sequence[Tensor], gap: int = 12) -> Tensor:
    """Grids ``(3, H_i, W_i)`` next to each other on white, top-aligned, ``gap`` pixels apart."""
    height = max(g.shape[1] for g in grids)
    width = sum(g.shape[2] for g in grids) + gap * (len(grids) - 1)
    out = torch.ones(3, height, width)
    x = 0
    for g in grids:
        out[:, : g.shape[1], x: x + g.shape[2]] = g
        x += g.shape[2] + gap
    return out


def save_grid(grid: Tensor, path: str | os.PathLike[str]) -> Tensor:
    """Write a ``(3, H, W)`` [0, 1] grid as a PNG atomically; returns it."""
    picture = to_pil_image(grid.clamp(0, 1))

    def write(tmp: os.PathLike[str]) -> None:
        picture.save(tmp, format="png")

    atomic_write(path, write)
    return grid


def plot_curves(path: str | os.PathLike[str], accuracy: Sequence[tuple[int, float]],
                references: dict[str, float] | None = None, cmi: Sequence[tuple[int, float]] = ()) -> bool:
    """Save test accuracy vs iteration (with horizontal reference lines, e.g. random / whole set) and, when given,
    the CMI vs iteration on a second axis, as a PNG. Returns ``False`` (nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(6, 4), dpi=100)
    if accuracy:
        steps, values = zip(*accuracy, strict=True)
        axis.plot(steps, values, marker="o", label="distilled set")
    for (name, value), style in zip((references or {}).items(), ("--", ":", "-."), strict=False):
        axis.axhline(value, linestyle=style, color="gray", label=name)
    axis.set_xlabel("iteration")
    axis.set_ylabel("test accuracy (%)")
    handles, labels = axis.get_legend_handles_labels()
    if cmi:
        other = axis.twinx()
        steps, values = zip(*cmi, strict=True)
        other.plot(steps, values, color="tab:red", alpha=0.6, label="reg/cmi")
        other.set_ylabel("CMI")
        more = other.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    axis.legend(handles, labels, loc="best", fontsize=8)
    figure.tight_layout()

    def write(tmp: os.PathLike[str]) -> None:
        figure.savefig(tmp, format="png")

    atomic_write(path, write)
    plt.close(figure)
    return True
