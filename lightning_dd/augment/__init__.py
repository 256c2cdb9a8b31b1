"""Augmentations: Differentiable Siamese Augmentation (DSA) with explicitly sampled, shareable parameters."""

from lightning_dd.augment.dsa import (
    DEFAULT_CONSTANTS,
    DSA,
    STRATEGY_OPS,
    DSAConstants,
    DSAParams,
    apply_color,
    apply_crop,
    apply_cutout,
    apply_flip,
    apply_rotate,
    apply_scale,
    crop_shift_range,
    cutout_size,
    parse_strategy,
)

__all__ = [
    "DEFAULT_CONSTANTS",
    "DSA",
    "STRATEGY_OPS",
    "DSAConstants",
    "DSAParams",
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
