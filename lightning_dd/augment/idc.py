"""IDC's differentiable augmentation (``snu-mllab/Efficient-Dataset-Condensation: misc/augment.py DiffAug``).

Same constants and per-op math as DSA (:mod:`lightning_dd.augment.ops`), different composition: the ops ``flip``,
``color`` and ``cutout`` of the strategy are **always** applied, in that order around **one** op drawn (for the whole
batch) from the remaining ones (``crop``, ``scale``, ``rotate``)::

    x -> flip (if listed) -> color (if listed) -> the drawn op (if any remain) -> cutout (if listed)

Parameters are per image (``batch=False`` of the reference: :meth:`IDCAugment.__call__`, network training) or one set
for a whole batch (``batch=True``, matching: ``sample(1, ...)`` applied to the concatenated real and synthetic images,
which is what makes it siamese). Draws come from the caller's generator (the reference uses the global numpy and
torch RNGs); :meth:`sample` draws in :class:`~lightning_dd.augment.dsa.DSA`'s fixed order, the op index over the
remaining ops.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lightning_dd.augment.dsa import DSA, DSAParams, parse_strategy
from lightning_dd.augment.ops import DEFAULT_CONSTANTS, DSAConstants

__all__ = ["ALWAYS_APPLIED", "IDCAugment"]

#: ops IDC applies whenever the strategy lists them, in this order (flip, color before the drawn op; cutout after)
ALWAYS_APPLIED: tuple[str, ...] = ("flip", "color", "cutout")


class IDCAugment(DSA):
    """IDC's augmentation with explicit parameters (a :class:`DSA` whose ``apply`` composes as IDC does).

    Args:
        strategy: ops joined by ``"_"`` (IDC matching: ``"color_crop_cutout"``; network training ``"color_crop"``;
            evaluation ``"color_crop_flip_scale_rotate"``); ``"none"`` is the identity.
        constants, align_corners: as :class:`DSA` (IDC: the reference constants, ``align_corners=False``).

    Attributes:
        always: the always-applied ops of the strategy, in application order.
        ops: the ops one is drawn from (the rest of the strategy); :class:`DSAParams.ops` indexes into them.
    """

    def __init__(self, strategy: str | None = "color_crop_cutout", constants: DSAConstants = DEFAULT_CONSTANTS,
                 align_corners: bool = False) -> None:
        listed = parse_strategy(strategy)
        self.always = tuple(op for op in ALWAYS_APPLIED if op in listed)
        super().__init__(strategy, constants, align_corners)
        self._listed = listed
        self.ops = tuple(op for op in listed if op not in ALWAYS_APPLIED)
        # the drawn op's applier, and the sampler (every field is drawn whatever the ops; "crop" when none remain)
        self._drawn = DSA("_".join(self.ops), constants, align_corners)
        self._sampler = DSA("_".join(self.ops or ("crop",)), constants, align_corners)

    @property
    def is_identity(self) -> bool:
        return not self._listed

    def sample(self, num_groups: int, generator: torch.Generator, *, shared_op: bool = True,
               image_size: tuple[int, int] | Sequence[int]) -> DSAParams:
        """One parameter set per group (every field drawn, :class:`DSA`'s order); one op for all groups (IDC draws
        the op once per call, whatever the mode), so ``shared_op`` is always true here."""
        if self.is_identity:
            return DSA.identity().sample(num_groups, generator, image_size=image_size)
        params = self._sampler.sample(num_groups, generator, shared_op=True, image_size=image_size)
        if not self.ops:  # nothing to draw from: the op index means nothing
            params.ops = torch.full_like(params.ops, -1)
        params.op_names = self.ops
        return params

    def apply(self, x: Tensor, params: DSAParams) -> Tensor:
        """Group ``g``'s parameters to ``x[g * k:(g + 1) * k]`` (``k = B // G``): the always-applied ops, the drawn op.

        Args:
            x: ``(B, C, H, W)`` normalised images.
            params: from :meth:`sample` of an :class:`IDCAugment` with the same strategy.
        """
        if x.dim() != 4:
            raise ValueError(f"IDCAugment expects (B, C, H, W) images, got shape {tuple(x.shape)}")
        if self.is_identity or x.shape[0] == 0:
            return x
        if params.op_names is not None and tuple(params.op_names) != self.ops:
            raise ValueError(f"params were sampled for ops {params.op_names}, this IDCAugment draws from {self.ops}")
        if params.image_size is not None and tuple(params.image_size) != (x.shape[2], x.shape[3]):
            raise ValueError(f"params were sampled for image size {params.image_size}, got images of size "
                             f"{(x.shape[2], x.shape[3])}")
        b, g = x.shape[0], params.num_groups
        if g == 0 or b % g:
            raise ValueError(f"batch size {b} is not a multiple of the number of parameter groups {g}")
        k = b // g
        for op in (op for op in self.always if op != "cutout"):  # flip, then color
            x = self._run_op(op, x, self._per_image_fields(op, params, None, k, x.device))
        if self.ops:
            x = self._drawn.apply(x, params)
        if "cutout" in self.always:
            x = self._run_op("cutout", x, self._per_image_fields("cutout", params, None, k, x.device))
        return x

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Network-training augmentation (the reference's ``batch=False``): per-image parameters, one drawn op."""
        if x.dim() != 4:
            raise ValueError(f"IDCAugment expects (B, C, H, W) images, got shape {tuple(x.shape)}")
        if self.is_identity:
            return x
        return self.apply(x, self.sample(x.shape[0], generator, image_size=(x.shape[2], x.shape[3])))
