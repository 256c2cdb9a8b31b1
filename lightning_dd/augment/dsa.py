"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, ICML 2021), sampled from an explicit generator.

The reference implementation (``VICO-UoE/DatasetCondensation: utils.py DiffAugment``) re-seeds the *global* torch
RNG from the clock before every draw and, in Siamese mode, copies the first sample's parameters onto every sample so
that a real and a synthetic batch see the same transformation. Here the two steps are separated:

1. :meth:`DSA.sample` draws a :class:`DSAParams` for ``G`` groups from a caller-supplied :class:`torch.Generator`;
2. :meth:`DSA.apply` applies them to any number of batches, group ``g`` to its ``k`` contiguous images.

Nothing in this module touches the global RNG or seeds anything.

Constants and per-op math follow ``ParamDiffAug`` / ``DiffAugment`` exactly (``spec/methods.md`` §1.3); the pure op
functions and the op table (:data:`~lightning_dd.augment.ops.OPS`) live in :mod:`lightning_dd.augment.ops`.
"No augmentation" is one object, the identity :meth:`DSA.identity` (``DSA("none")``), never ``None``.

Draw order of :meth:`DSA.sample` (fixed; every tensor is drawn for every group whichever op is chosen, so the random
stream does not depend on the op outcome; ``G`` = ``num_groups``):

1. ``ops``: ``randint(0, n_ops, (1,))`` expanded to ``G`` if ``shared_op``, else ``randint(0, n_ops, (G,))``;
2. ``brightness``: ``rand(G)`` -> ``(u - 0.5) * brightness``;
3. ``saturation``: ``rand(G)`` -> ``u * saturation``;
4. ``contrast``: ``rand(G)`` -> ``u + contrast``;
5. ``crop``: ``randint(-s_h, s_h + 1, (G,))`` (rows), then ``randint(-s_w, s_w + 1, (G,))`` (cols);
6. ``cutout``: ``randint(0, H + 1 - c_h % 2, (G,))`` (rows), then ``randint(0, W + 1 - c_w % 2, (G,))`` (cols);
7. ``flip``: ``rand(G)`` (kept as is; flip where ``u < prob_flip``);
8. ``scale``: ``rand(G)`` -> ``sx``, then ``rand(G)`` -> ``sy``;
9. ``rotate``: ``rand(G)`` -> ``(u - 0.5) * 2 * ratio_rotate / 180 * pi``.

with ``s_h = int(H * ratio_crop_pad + 0.5)``, ``c_h = int(H * ratio_cutout + 0.5)`` (likewise for ``W``) and
``sx = u * (ratio_scale - 1 / ratio_scale) + 1 / ratio_scale``. Uniform draws are float32 (as in the reference),
integer draws int64. An identity strategy (``""`` / ``"none"``) draws nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from lightning_dd.augment.ops import DEFAULT_CONSTANTS, OPS, STRATEGY_OPS, DSAConstants, crop_shift_range, cutout_size

__all__ = ["DSA", "IDENTITY_STRATEGIES", "DSAParams", "parse_strategy"]

IDENTITY_STRATEGIES: tuple[str, ...] = ("", "none")
"""Strategy strings meaning "no augmentation" (case-insensitive; ``None`` too)."""


@dataclass(eq=False)
class DSAParams:
    """Augmentation parameters for ``G`` groups (one op and one parameter set per group).

    Every per-op tensor is present for every group, whichever op was chosen. Values are already mapped through
    the constants (shifts / factors / radians), except ``flip`` which keeps its uniform draw.

    Attributes:
        ops: int64 ``(G,)``, index into the sampling strategy's op list (``op_names``); ``-1`` for identity.
        brightness: ``(G,)`` additive shift in ``[-0.5, 0.5]``.
        saturation: ``(G,)`` factor in ``[0, 2]``.
        contrast: ``(G,)`` factor in ``[0.5, 1.5]``.
        crop: int64 ``(G, 2)`` translation ``(rows, cols)``: output pixel ``(i, j)`` reads input ``(i + t0, j + t1)``.
        cutout: int64 ``(G, 2)`` centre ``(row, col)`` of the zeroed rectangle.
        flip: ``(G,)`` uniform draw; the group is flipped horizontally where ``flip < prob_flip``.
        scale: ``(G, 2)`` factors ``(sx, sy)`` (``sx`` along the width, ``sy`` along the height).
        rotate: ``(G,)`` angle in radians.
        op_names: the op list ``ops`` indexes into (the sampling strategy's ``DSA.ops``); ``None`` means "the
            applying :class:`DSA`'s ops". :meth:`DSA.apply` refuses params sampled for another op list.
        image_size: ``(H, W)`` the params were sampled for (crop / cutout ranges); ``None`` skips the check.
    """

    ops: Tensor
    brightness: Tensor
    saturation: Tensor
    contrast: Tensor
    crop: Tensor
    cutout: Tensor
    flip: Tensor
    scale: Tensor
    rotate: Tensor
    op_names: tuple[str, ...] | None = None
    image_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        g = self.ops.shape[0] if self.ops.dim() == 1 else -1
        for name in _TENSOR_FIELDS:
            t = getattr(self, name)
            if t.dim() == 0 or t.shape[0] != g:
                raise ValueError(
                    f"DSAParams.{name} must have leading dim G={g} (ops is {tuple(self.ops.shape)}), "
                    f"got shape {tuple(t.shape)}"
                )

    @property
    def num_groups(self) -> int:
        """``G``, the number of parameter groups."""
        return int(self.ops.shape[0])

    def __len__(self) -> int:
        return self.num_groups

    def __getitem__(self, index: slice | Tensor) -> DSAParams:
        """Select groups (a slice, or an int64 / bool index tensor); ``params[g:g + 1]`` is group ``g`` alone."""
        if isinstance(index, int):
            raise TypeError("index DSAParams with a slice (params[g:g + 1]) or an index tensor, not an int")
        if isinstance(index, Tensor):
            index = index.to(self.ops.device)
        return replace(self, **{name: getattr(self, name)[index] for name in _TENSOR_FIELDS})

    def to(self, device: torch.device | str) -> DSAParams:
        """A copy with every tensor on ``device`` (tensors already there are not copied)."""
        return replace(self, **{name: getattr(self, name).to(device) for name in _TENSOR_FIELDS})


_TENSOR_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(DSAParams) if f.name not in ("op_names", "image_size"))


def parse_strategy(strategy: str | None) -> tuple[str, ...]:
    """``"color_crop"`` -> ``("color", "crop")``; ``""`` / ``"none"`` / ``None`` -> ``()`` (identity).

    Raises:
        ValueError: an op is not one of :data:`STRATEGY_OPS`.
    """
    if strategy is None or strategy.strip().lower() in IDENTITY_STRATEGIES:
        return ()
    ops = tuple(strategy.split("_"))
    for op in ops:
        if op not in STRATEGY_OPS:
            raise ValueError(
                f"unknown DSA op {op!r} in strategy {strategy!r}; allowed ops: {', '.join(STRATEGY_OPS)} "
                "(joined by '_'), or 'none'"
            )
    return ops


class DSA:
    """Differentiable Siamese Augmentation with explicit parameters.

    Args:
        strategy: ops joined by ``"_"`` (each one of :data:`STRATEGY_OPS`; a repeated op is drawn more often, as in
            the reference); ``""`` / ``"none"`` / ``None`` is the identity. Digits datasets (MNIST, SVHN) should
            leave out ``flip``.
        constants: the ``ParamDiffAug`` constants.
        align_corners: for ``affine_grid`` / ``grid_sample`` in scale and rotate (MTT uses ``True``, VICO / CMIDD /
            IID the default ``False``).

    Example::

        dsa = DSA()
        g = torch.Generator().manual_seed(0)
        real_aug, syn_aug = dsa.siamese(real, syn, generator=g)  # one op, one parameter set for both batches
        student_x = dsa(x, g)  # one op for the whole batch, per-image parameters
        params = dsa.sample(num_classes, g, image_size=(32, 32))  # one op + parameter set per class ...
        real_aug = dsa.apply(real, params)  # ... applied to each class's contiguous k_real images
        syn_aug = dsa.apply(syn, params)  # ... and to each class's contiguous ipc images
    """

    def __init__(self, strategy: str | None = "color_crop_cutout_flip_scale_rotate",
                 constants: DSAConstants = DEFAULT_CONSTANTS, align_corners: bool = False) -> None:
        self.strategy = strategy
        self.ops: tuple[str, ...] = parse_strategy(strategy)
        self.constants = constants
        self.align_corners = align_corners

    def __repr__(self) -> str:
        c, a = self.constants, self.align_corners
        return f"{type(self).__name__}(strategy={self.strategy!r}, constants={c!r}, align_corners={a})"

    @classmethod
    def identity(cls) -> DSA:
        """The "no augmentation" DSA (``DSA("none")``): returns its inputs and draws nothing from any generator.

        lightning_dd has one representation of "no augmentation": this object, never ``None``; callers apply a DSA
        unconditionally (or test :attr:`is_identity` to skip work).
        """
        return cls("none")

    @property
    def is_identity(self) -> bool:
        """Whether the strategy is empty (``apply`` returns its input, ``sample`` draws nothing)."""
        return not self.ops

    # ------------------------------------------------------------------------------------------------------------
    def sample(
        self,
        num_groups: int,
        generator: torch.Generator,
        *,
        shared_op: bool = False,
        image_size: tuple[int, int] | Sequence[int],
    ) -> DSAParams:
        """Draw one op and one parameter set per group, in the documented order (module docstring).

        Args:
            num_groups: ``G``.
            generator: the only source of randomness; tensors are created on ``generator.device``.
            shared_op: draw a single op for all groups (reference mode ``'S'`` with per-sample parameters); otherwise
                one op per group, uniform over :attr:`ops`.
            image_size: ``(H, W)`` of the images the params will be applied to (crop and cutout ranges).

        Returns:
            :class:`DSAParams` with ``G`` groups.
        """
        if num_groups < 0:
            raise ValueError(f"num_groups must be >= 0, got {num_groups}")
        h, w = (int(s) for s in image_size)
        g, dev = num_groups, generator.device
        c = self.constants
        if self.is_identity:
            zeros = torch.zeros(g, device=dev)
            return DSAParams(
                ops=torch.full((g,), -1, dtype=torch.long, device=dev),
                brightness=zeros,
                saturation=zeros + 1,
                contrast=zeros + 1,
                crop=torch.zeros(g, 2, dtype=torch.long, device=dev),
                cutout=torch.zeros(g, 2, dtype=torch.long, device=dev),
                flip=zeros + 1,
                scale=torch.ones(g, 2, device=dev),
                rotate=zeros,
                op_names=self.ops,
                image_size=(h, w),
            )

        def rand() -> Tensor:
            return torch.rand(g, generator=generator, device=dev, dtype=torch.float32)

        def randint(low: int, high: int) -> Tensor:
            return torch.randint(low, high, (g,), generator=generator, device=dev, dtype=torch.long)

        n_ops = len(self.ops)
        if shared_op:
            ops = torch.randint(0, n_ops, (1,), generator=generator, device=dev, dtype=torch.long).expand(g).clone()
        else:
            ops = randint(0, n_ops)
        brightness = (rand() - 0.5) * c.brightness
        saturation = rand() * c.saturation
        contrast = rand() + c.contrast
        s_h, s_w = crop_shift_range((h, w), c)
        crop = torch.stack([randint(-s_h, s_h + 1), randint(-s_w, s_w + 1)], dim=1)
        c_h, c_w = cutout_size((h, w), c)
        cutout = torch.stack([randint(0, h + (1 - c_h % 2)), randint(0, w + (1 - c_w % 2))], dim=1)
        flip = rand()
        lo = 1.0 / c.ratio_scale
        sx = rand() * (c.ratio_scale - lo) + lo
        sy = rand() * (c.ratio_scale - lo) + lo
        scale = torch.stack([sx, sy], dim=1)
        rotate = (rand() - 0.5) * 2 * c.ratio_rotate / 180 * math.pi
        return DSAParams(
            ops=ops,
            brightness=brightness,
            saturation=saturation,
            contrast=contrast,
            crop=crop,
            cutout=cutout,
            flip=flip,
            scale=scale,
            rotate=rotate,
            op_names=self.ops,
            image_size=(h, w),
        )

    # ------------------------------------------------------------------------------------------------------------
    def apply_op(self, op: str, x: Tensor, params: DSAParams) -> Tensor:
        """Apply ``op`` with per-image parameters to every image of ``x`` (``params.ops`` is ignored).

        Args:
            op: one of :data:`~lightning_dd.augment.ops.STRATEGY_OPS`.
            x: ``(N, C, H, W)``.
            params: ``N`` groups, one per image.

        Returns:
            ``(N, C, H, W)``.
        """
        if params.num_groups != x.shape[0]:
            raise ValueError(f"apply_op needs one parameter group per image, got {params.num_groups} for {x.shape[0]}")
        if op not in OPS:
            raise ValueError(f"unknown DSA op {op!r}; allowed ops: {', '.join(STRATEGY_OPS)}")
        return self._run_op(op, x, {name: getattr(params, name) for name in OPS[op].fields})

    def _run_op(self, op: str, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """``x``: ``(N, C, H, W)``; ``p``: the fields ``op`` reads, each with leading dim ``N`` (dispatch via OPS)."""
        return OPS[op].fn(x, p, self.constants, self.align_corners)

    @staticmethod
    def _per_image_fields(
        op: str, params: DSAParams, groups: Tensor | None, k: int, device: torch.device
    ) -> dict[str, Tensor]:
        """The fields ``op`` reads, restricted to ``groups`` (all if ``None``), repeated ``k`` times, on ``device``."""
        out = {}
        for name in OPS[op].fields:
            t = getattr(params, name)
            if groups is not None:
                t = t[groups.to(t.device)]
            t = t.to(device)
            out[name] = t.repeat_interleave(k, dim=0) if k != 1 else t
        return out

    def apply(self, x: Tensor, params: DSAParams) -> Tensor:
        """Apply group ``g``'s op and parameters to ``x[g * k:(g + 1) * k]``, ``k = B // G``.

        Ops are applied per op type (at most ``len(self.ops)`` batched calls, no loop over groups); the result is
        differentiable w.r.t. ``x``. Params are moved to ``x.device`` (only the fields the chosen ops read).

        Host cost: the op choice ``params.ops`` is read on the host once per call (one small ``unique``). Params
        sampled from a CPU generator (as everywhere in lightning_dd) make that read free of device syncs; params
        living on an accelerator cost one device-to-host copy of ``ops`` (``G`` integers) per call.

        Args:
            x: ``(B, C, H, W)`` normalised images, ``B = G * k``, each group's ``k`` images contiguous.
            params: from :meth:`sample` of a :class:`DSA` with the same ops.

        Returns:
            ``(B, C, H, W)`` augmented images (``x`` itself for the identity strategy).

        Raises:
            ValueError: bad shapes, ``B`` not a multiple of ``G``, or params sampled for other ops / image size.
        """
        if x.dim() != 4:
            raise ValueError(f"DSA expects (B, C, H, W) images, got shape {tuple(x.shape)}")
        if params.op_names is not None and tuple(params.op_names) != self.ops:
            raise ValueError(f"params were sampled for ops {params.op_names}, this DSA has ops {self.ops}")
        if self.is_identity:
            return x
        b, g = x.shape[0], params.num_groups
        if params.image_size is not None and tuple(params.image_size) != (x.shape[2], x.shape[3]):
            raise ValueError(
                f"params were sampled for image size {params.image_size}, got images of size {(x.shape[2], x.shape[3])}"
            )
        if b == 0:
            return x
        if g == 0 or b % g != 0:
            raise ValueError(f"batch size {b} is not a multiple of the number of parameter groups {g}")
        k = b // g
        op_idx = params.ops.cpu()  # a no-op for CPU-sampled params
        present: list[int] = op_idx.unique().tolist()  # sorted
        if present[0] < 0 or present[-1] >= len(self.ops):
            raise ValueError(f"params.ops must index into {self.ops}, got values {present}")

        if len(present) == 1:  # the common case: siamese (G=1) and shared-op student batches
            op = self.ops[present[0]]
            return self._run_op(op, x, self._per_image_fields(op, params, None, k, x.device))

        outs, positions = [], []
        within = torch.arange(k)
        for j in present:
            op = self.ops[j]
            groups = (op_idx == j).nonzero().squeeze(1)  # (G_j,)
            pos = (groups[:, None] * k + within).reshape(-1).to(x.device)  # (G_j * k,) image indices
            fields_j = self._per_image_fields(op, params, groups, k, x.device)
            outs.append(self._run_op(op, x.index_select(0, pos), fields_j))
            positions.append(pos)
        perm = torch.cat(positions)
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(b, device=x.device)
        return torch.cat(outs).index_select(0, inverse)

    # ------------------------------------------------------------------------------------------------------------
    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Student-training augmentation: one op for the batch, per-image parameters (reference ``seed=-1``).

        Args:
            x: ``(B, C, H, W)``.
            generator: source of randomness.

        Returns:
            ``(B, C, H, W)``.
        """
        if x.dim() != 4:
            raise ValueError(f"DSA expects (B, C, H, W) images, got shape {tuple(x.shape)}")
        if self.is_identity:
            return x
        params = self.sample(x.shape[0], generator, shared_op=True, image_size=(x.shape[2], x.shape[3]))
        return self.apply(x, params)

    def siamese(self, *batches: Tensor, generator: torch.Generator) -> tuple[Tensor, ...]:
        """One op and one parameter set (``G = 1``) applied to every image of every batch.

        Args:
            *batches: ``(B_i, C, H, W)`` each, all with the same ``H, W`` (e.g. a real and a synthetic batch).
            generator: source of randomness.

        Returns:
            The augmented batches, in order.
        """
        if not batches:
            raise ValueError("siamese() needs at least one batch")
        if self.is_identity:
            return tuple(batches)
        sizes = {(t.shape[-2], t.shape[-1]) for t in batches}
        if len(sizes) != 1:
            raise ValueError(f"siamese batches must share their image size, got {sorted(sizes)}")
        params = self.sample(1, generator, image_size=next(iter(sizes)))
        return tuple(self.apply(t, params) for t in batches)
