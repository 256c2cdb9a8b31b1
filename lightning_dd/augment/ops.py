"""The pure DSA op functions and the one table that dispatches them.

Every function maps ``(N, C, H, W)`` images and per-image parameters (leading dim ``N``) to ``(N, C, H, W)``; nothing
here draws random numbers or holds state. The math follows ``VICO-UoE/DatasetCondensation: utils.py ParamDiffAug /
DiffAugment`` (``spec/methods.md`` §1.3); :mod:`lightning_dd.augment.dsa` samples the parameters.

:data:`OPS` is the single op table: op name -> :class:`DSAOp` (the :class:`~lightning_dd.augment.dsa.DSAParams`
fields it reads, and an adapter ``fn(x, fields, constants, align_corners)``). Both the dispatch of
:meth:`DSA.apply <lightning_dd.augment.dsa.DSA.apply>` and the list of allowed strategy ops come from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DEFAULT_CONSTANTS",
    "OPS",
    "STRATEGY_OPS",
    "DSAConstants",
    "DSAOp",
    "apply_color",
    "apply_crop",
    "apply_cutout",
    "apply_flip",
    "apply_rotate",
    "apply_scale",
    "crop_shift_range",
    "cutout_size",
]


@dataclass(frozen=True)
class DSAConstants:
    """The reference ``ParamDiffAug`` constants (VICO/CMIDD/IID/IDM; MTT uses the same values).

    Attributes:
        prob_flip: probability of a horizontal flip.
        ratio_scale: scale factors are uniform in ``[1 / ratio_scale, ratio_scale]``.
        ratio_rotate: rotation angles are uniform in ``[-ratio_rotate, ratio_rotate]`` degrees.
        ratio_crop_pad: maximal crop translation as a fraction of the image side (rounded half up).
        ratio_cutout: cutout square side as a fraction of the image side (rounded half up).
        brightness: brightness shift is uniform in ``[-brightness / 2, brightness / 2]``.
        saturation: saturation factor is uniform in ``[0, saturation]``.
        contrast: contrast factor is uniform in ``[contrast, contrast + 1]``.
    """

    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5


DEFAULT_CONSTANTS = DSAConstants()
"""The reference constants (a shared immutable instance, used as the default of :class:`~lightning_dd.augment.DSA`)."""


def crop_shift_range(image_size: tuple[int, int], constants: DSAConstants = DEFAULT_CONSTANTS) -> tuple[int, int]:
    """Maximal crop translation ``(s_h, s_w)`` in pixels; shifts are uniform integers in ``[-s, s]`` (4 at 32x32)."""
    h, w = image_size
    return int(h * constants.ratio_crop_pad + 0.5), int(w * constants.ratio_crop_pad + 0.5)


def cutout_size(image_size: tuple[int, int], constants: DSAConstants = DEFAULT_CONSTANTS) -> tuple[int, int]:
    """Cutout rectangle ``(c_h, c_w)`` in pixels (16x16 at 32x32)."""
    h, w = image_size
    return int(h * constants.ratio_cutout + 0.5), int(w * constants.ratio_cutout + 0.5)


# ----------------------------------------------------------------------------------------------------------------
# Per-op functions. x: (N, C, H, W); every parameter tensor has leading dim N (one entry per image).
# ----------------------------------------------------------------------------------------------------------------


def _per_image(t: Tensor, x: Tensor) -> Tensor:
    """``(N,)`` -> ``(N, 1, 1, 1)`` in ``x``'s dtype / device."""
    return t.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def apply_color(x: Tensor, brightness: Tensor, saturation: Tensor, contrast: Tensor) -> Tensor:
    """Brightness, then saturation, then contrast (``rand_brightness/saturation/contrast``).

    Args:
        x: ``(N, C, H, W)`` normalised images.
        brightness: ``(N,)`` additive shift.
        saturation: ``(N,)`` factor applied around the per-pixel channel mean.
        contrast: ``(N,)`` factor applied around the per-image ``C, H, W`` mean.

    Returns:
        ``(N, C, H, W)``.
    """
    x = x + _per_image(brightness, x)
    m = x.mean(dim=1, keepdim=True)
    x = (x - m) * _per_image(saturation, x) + m
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * _per_image(contrast, x) + m


def apply_flip(x: Tensor, u: Tensor, prob: float = DEFAULT_CONSTANTS.prob_flip) -> Tensor:
    """Horizontal flip (last dim) of the images with ``u < prob``. ``x``: ``(N, C, H, W)``; ``u``: ``(N,)``."""
    return torch.where(_per_image(u, x) < prob, x.flip(3), x)


def _affine(x: Tensor, theta: Tensor, align_corners: bool) -> Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


def apply_scale(x: Tensor, factors: Tensor, align_corners: bool = False) -> Tensor:
    """Scale by ``theta = [[sx, 0, 0], [0, sy, 0]]`` with ``affine_grid`` + bilinear ``grid_sample`` (zero padding).

    Args:
        x: ``(N, C, H, W)``.
        factors: ``(N, 2)`` ``(sx, sy)``; ``sx`` multiplies the normalised width coordinate.
        align_corners: passed to ``affine_grid`` and ``grid_sample``.

    Returns:
        ``(N, C, H, W)``.
    """
    f = factors.to(device=x.device, dtype=x.dtype)
    theta = x.new_zeros(x.shape[0], 2, 3)
    theta[:, 0, 0] = f[:, 0]
    theta[:, 1, 1] = f[:, 1]
    return _affine(x, theta, align_corners)


def apply_rotate(x: Tensor, angles: Tensor, align_corners: bool = False) -> Tensor:
    """Rotate by ``theta = [[cos t, -sin t, 0], [sin t, cos t, 0]]`` (``affine_grid`` + bilinear ``grid_sample``).

    Args:
        x: ``(N, C, H, W)``.
        angles: ``(N,)`` radians.
        align_corners: passed to ``affine_grid`` and ``grid_sample``.

    Returns:
        ``(N, C, H, W)``.
    """
    t = angles.to(device=x.device, dtype=x.dtype)
    cos, sin = torch.cos(t), torch.sin(t)
    theta = x.new_zeros(x.shape[0], 2, 3)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin
    theta[:, 1, 1] = cos
    return _affine(x, theta, align_corners)


def apply_crop(x: Tensor, shifts: Tensor) -> Tensor:
    """Integer translation with zero fill (``rand_crop``): pad by one zero pixel, clamp indices into the border.

    Args:
        x: ``(N, C, H, W)``.
        shifts: int ``(N, 2)`` ``(t_row, t_col)``; output ``(i, j)`` = input ``(i + t_row, j + t_col)``, zero outside.

    Returns:
        ``(N, C, H, W)``.
    """
    n, c, h, w = x.shape
    s = shifts.to(device=x.device, dtype=torch.long)
    rows = (torch.arange(h, device=x.device) + s[:, :1] + 1).clamp(0, h + 1)  # (N, H), indices into padded rows
    cols = (torch.arange(w, device=x.device) + s[:, 1:] + 1).clamp(0, w + 1)  # (N, W)
    xp = F.pad(x, (1, 1, 1, 1))  # (N, C, H + 2, W + 2), zero border
    xp = xp.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2))
    return xp.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def apply_cutout(x: Tensor, offsets: Tensor, size: tuple[int, int]) -> Tensor:
    """Zero a ``size`` rectangle centred at ``offsets`` (``rand_cutout``), clipped to the image.

    The reference zeroes pixels ``clamp(o - size // 2 + i, 0, H - 1)`` for ``i < size``; since clamping is monotonic
    that set is the interval between the clamped end points, which is what the mask is built from.

    Args:
        x: ``(N, C, H, W)``.
        offsets: int ``(N, 2)`` centre ``(row, col)``.
        size: ``(c_h, c_w)`` rectangle size in pixels.

    Returns:
        ``(N, C, H, W)``.
    """
    _, _, h, w = x.shape
    o = offsets.to(device=x.device, dtype=torch.long)

    def inside(o_: Tensor, size_: int, n_: int) -> Tensor:  # (N, n_) bool: position covered by the cutout
        lo = (o_ - size_ // 2).clamp(0, n_ - 1)
        hi = (o_ - size_ // 2 + size_ - 1).clamp(0, n_ - 1)
        pos = torch.arange(n_, device=x.device)
        return (pos >= lo) & (pos <= hi) & (size_ > 0)

    covered = inside(o[:, :1], size[0], h)[:, :, None] & inside(o[:, 1:], size[1], w)[:, None, :]  # (N, H, W)
    return x * (~covered).to(x.dtype).unsqueeze(1)


# ----------------------------------------------------------------------------------------------------------------
# The op table
# ----------------------------------------------------------------------------------------------------------------

OpFn = Callable[[Tensor, Mapping[str, Tensor], DSAConstants, bool], Tensor]
"""``fn(x, fields, constants, align_corners)``: ``x`` ``(N, C, H, W)``; ``fields`` the op's parameter tensors by
:class:`~lightning_dd.augment.dsa.DSAParams` field name, each with leading dim ``N``."""


@dataclass(frozen=True)
class DSAOp:
    """One entry of :data:`OPS`.

    Attributes:
        fields: the :class:`~lightning_dd.augment.dsa.DSAParams` fields the op reads (only these are moved to the
            images' device).
        fn: the adapter ``fn(x, fields, constants, align_corners) -> (N, C, H, W)``.
    """

    fields: tuple[str, ...]
    fn: OpFn


def _color(x: Tensor, p: Mapping[str, Tensor], c: DSAConstants, align_corners: bool) -> Tensor:
    return apply_color(x, p["brightness"], p["saturation"], p["contrast"])


def _crop(x: Tensor, p: Mapping[str, Tensor], c: DSAConstants, align_corners: bool) -> Tensor:
    return apply_crop(x, p["crop"])


def _cutout(x: Tensor, p: Mapping[str, Tensor], c: DSAConstants, align_corners: bool) -> Tensor:
    return apply_cutout(x, p["cutout"], cutout_size((x.shape[2], x.shape[3]), c))


def _flip(x: Tensor, p: Mapping[str, Tensor], c: DSAConstants, align_corners: bool) -> Tensor:
    return apply_flip(x, p["flip"], c.prob_flip)


def _scale(x: Tensor, p: Mapping[str, Tensor], c: DSAConstants, align_corners: bool) -> Tensor:
    return apply_scale(x, p["scale"], align_corners)


def _rotate(x: Tensor, p: Mapping[str, Tensor], c: DSAConstants, align_corners: bool) -> Tensor:
    return apply_rotate(x, p["rotate"], align_corners)


OPS: Mapping[str, DSAOp] = MappingProxyType({
    "color": DSAOp(("brightness", "saturation", "contrast"), _color),
    "crop": DSAOp(("crop",), _crop),
    "cutout": DSAOp(("cutout",), _cutout),
    "flip": DSAOp(("flip",), _flip),
    "scale": DSAOp(("scale",), _scale),
    "rotate": DSAOp(("rotate",), _rotate),
})
"""Op name -> :class:`DSAOp`, in the reference's ``AUGMENT_FNS`` order (color = brightness, saturation, contrast)."""

STRATEGY_OPS: tuple[str, ...] = tuple(OPS)
"""The op names a strategy string may contain (joined by ``"_"``)."""
