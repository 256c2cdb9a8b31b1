"""Augmentations: Differentiable Siamese Augmentation (DSA) with explicitly sampled, shareable parameters.

``dsa.py`` holds the sampler / applier (:class:`DSA`, :class:`DSAParams`); ``ops.py`` the pure op functions and the
op table; ``idc.py`` IDC's composition of the same ops (:class:`IDCAugment`). "No augmentation" is :meth:`DSA.identity`.
"""

from lightning_dd.augment.dsa import DSA, IDENTITY_STRATEGIES, DSAParams, parse_strategy
from lightning_dd.augment.idc import IDCAugment
from lightning_dd.augment.ops import (
    DEFAULT_CONSTANTS,
    OPS,
    STRATEGY_OPS,
    DSAConstants,
    DSAOp,
    apply_color,
    apply_crop,
    apply_cutout,
    apply_flip,
    apply_rotate,
    apply_scale,
    crop_shift_range,
    cutout_size,
)

__all__ = [
    "DEFAULT_CONSTANTS",
    "DSA",
    "IDENTITY_STRATEGIES",
    "OPS",
    "STRATEGY_OPS",
    "DSAConstants",
    "DSAOp",
    "DSAParams",
    "IDCAugment",
    "apply_color",
    "apply_crop",
    "apply_cutout",
    "apply_flip",
    "apply_rotate",
    "apply_scale",
    "crop_shift_range",
    "cutout_size",
    "parse_strategy",
]
