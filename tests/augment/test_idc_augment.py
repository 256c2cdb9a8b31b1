"""``IDCAugment``: IDC's composition of the DSA ops (``snu-mllab/Efficient-Dataset-Condensation: misc/augment.py
DiffAug``): flip, color, cutout of the strategy always, in the order flip -> color -> one drawn op -> cutout; one
parameter set per batch (``sample(1)`` + ``apply``) or per image (``__call__``), from the caller's generator only.

The expected outputs are composed here from the pure op functions of :mod:`lightning_dd.augment.ops`."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from lightning_dd.augment import (
    DSA,
    DSAParams,
    IDCAugment,
    apply_color,
    apply_crop,
    apply_cutout,
    apply_flip,
    apply_rotate,
    apply_scale,
)

SIZE = (32, 32)
CUT = (16, 16)  # int(32 * 0.5 + 0.5): the reference cutout side at 32x32
EVAL = "color_crop_flip_scale_rotate"  # IDC's evaluation strategy


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 6, c: int = 3, h: int = 32, w: int = 32, seed: int = 123) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=gen(seed))


def expand(params: DSAParams, n: int) -> DSAParams:
    """One group's parameters for each of ``n`` images (the batch=True mode written out)."""
    assert params.num_groups == 1
    return params[torch.zeros(n, dtype=torch.long)]


def color(x: torch.Tensor, p: DSAParams) -> torch.Tensor:
    return apply_color(x, p.brightness, p.saturation, p.contrast)


def drawn(op: str, x: torch.Tensor, p: DSAParams) -> torch.Tensor:
    """The drawn op of IDC's strategy with per-image parameters (``align_corners=False``, IDC's setting)."""
    if op == "crop":
        return apply_crop(x, p.crop)
    if op == "scale":
        return apply_scale(x, p.scale, align_corners=False)
    assert op == "rotate"
    return apply_rotate(x, p.rotate, align_corners=False)


def covered_mask(h: int, w: int, centre: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """The reference ``rand_cutout`` scatter: zero rows ``clamp(o - s // 2 + i, 0, H - 1)``, ``i < s``; bool (H, W)."""
    rows = {min(max(centre[0] - size[0] // 2 + i, 0), h - 1) for i in range(size[0])}
    cols = {min(max(centre[1] - size[1] // 2 + j, 0), w - 1) for j in range(size[1])}
    mask = torch.zeros(h, w, dtype=torch.bool)
    for r in rows:
        for c in cols:
            mask[r, c] = True
    return mask


# ---------------------------------------------------------------------------------------------------------------
# Strategy split: always-applied ops, drawn ops
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "always", "ops"),
    [
        ("color_crop_cutout", ("color", "cutout"), ("crop",)),
        ("color_crop", ("color",), ("crop",)),
        (EVAL, ("flip", "color"), ("crop", "scale", "rotate")),
        ("color_cutout", ("color", "cutout"), ()),
        ("none", (), ()),
        ("cutout_rotate_flip_color", ("flip", "color", "cutout"), ("rotate",)),  # application order, not listing
    ],
)
def test_always_applied_and_drawn_ops(strategy: str, always: tuple[str, ...], ops: tuple[str, ...]) -> None:
    aug = IDCAugment(strategy)
    assert aug.always == always
    assert aug.ops == ops
    assert aug.is_identity == (strategy == "none")


def test_identity_strategies_return_the_input_and_draw_nothing() -> None:
    x = images(4)
    state = torch.get_rng_state()
    for strategy in ("none", "", None):
        aug = IDCAugment(strategy)
        assert aug.is_identity and aug.always == () and aug.ops == ()
        g = gen(3)
        assert aug(x, g) is x
        assert aug.apply(x, aug.sample(4, g, image_size=SIZE)) is x
        assert torch.equal(g.get_state(), gen(3).get_state())  # the identity draws nothing
    assert torch.equal(torch.get_rng_state(), state)


def test_bad_strategy_names_the_op() -> None:
    with pytest.raises(ValueError, match=r"unknown DSA op 'blur' in strategy 'color_blur_cutout'"):
        IDCAugment("color_blur_cutout")
    with pytest.raises(ValueError, match=r"'Crop'"):
        IDCAugment("color_Crop")


# ---------------------------------------------------------------------------------------------------------------
# Composition, against the op functions
# ---------------------------------------------------------------------------------------------------------------


def test_matching_strategy_is_color_then_crop_then_cutout_for_one_parameter_set() -> None:
    aug = IDCAugment("color_crop_cutout")
    x = images(5)
    params = aug.sample(1, gen(4), image_size=SIZE)
    assert params.num_groups == 1 and params.op_names == ("crop",) and params.ops.tolist() == [0]
    p = expand(params, 5)
    expected = apply_cutout(apply_crop(color(x, p), p.crop), p.cutout, CUT)
    assert torch.equal(aug.apply(x, params), expected)


def test_per_image_call_is_color_then_crop_then_cutout_per_image() -> None:
    aug = IDCAugment("color_crop_cutout")
    x = images(6)
    p = aug.sample(6, gen(5), image_size=SIZE)  # what __call__ draws from the same generator state
    assert bool((p.crop != 0).any())  # a real translation, so the order below matters
    expected = apply_cutout(apply_crop(color(x, p), p.crop), p.cutout, CUT)
    out = aug(x, gen(5))
    assert torch.equal(out, expected)
    assert torch.equal(aug.apply(x, p), expected)
    # the order is observable: cutout before crop (DSA-style composition) moves the hole
    assert not torch.equal(out, apply_crop(apply_cutout(color(x, p), p.cutout, CUT), p.crop))
    assert not torch.equal(out, apply_crop(color(x, p), p.crop))  # cutout really ran


@pytest.mark.parametrize("op", ["crop", "scale", "rotate"])
def test_evaluation_strategy_is_flip_then_color_then_the_drawn_op(op: str) -> None:
    aug = IDCAugment(EVAL)
    x = images(4, h=16, w=16)
    params = aug.sample(4, gen(6), image_size=(16, 16))
    params = replace(
        params,
        ops=torch.full((4,), aug.ops.index(op), dtype=torch.long),
        flip=torch.tensor([0.1, 0.9, 0.2, 0.7]),  # images 0 and 2 flipped
        crop=torch.tensor([[1, 2], [0, -3], [2, 1], [-1, 0]]),
    )
    expected = drawn(op, color(apply_flip(x, params.flip), params), params)
    out = aug.apply(x, params)
    assert torch.equal(out, expected)
    if op != "scale":  # flip precedes the drawn op (a centred scale commutes with a flip; crop and rotate do not)
        flipped_last = apply_flip(drawn(op, color(x, params), params), params.flip)
        assert (out - flipped_last).abs().max() > 0.1
    # no cutout in this strategy: the always-applied ops are flip and color only
    assert not torch.equal(out, apply_cutout(expected, params.cutout, (8, 8)))


def test_no_remaining_op_applies_the_always_ops_only() -> None:
    aug = IDCAugment("color_cutout")
    x = images(5)
    p = aug.sample(5, gen(7), image_size=SIZE)
    assert p.op_names == () and p.ops.tolist() == [-1] * 5
    assert torch.equal(aug(x, gen(7)), apply_cutout(color(x, p), p.cutout, CUT))


def test_evaluation_strategy_draws_one_of_crop_scale_rotate_for_the_whole_batch() -> None:
    aug = IDCAugment(EVAL)
    seen = set()
    for seed in range(60):
        params = aug.sample(5, gen(seed), image_size=SIZE)
        assert params.op_names == ("crop", "scale", "rotate")
        assert len(set(params.ops.tolist())) == 1  # one op per call, whatever the mode
        seen |= set(params.ops.tolist())
    assert seen == {0, 1, 2}


def test_sample_draws_in_the_documented_dsa_order() -> None:
    g_ref = gen(8)
    aug = IDCAugment(EVAL)
    params = aug.sample(3, gen(8), image_size=SIZE)

    def rand() -> torch.Tensor:
        return torch.rand(3, generator=g_ref)

    def randint(low: int, high: int) -> torch.Tensor:
        return torch.randint(low, high, (3,), generator=g_ref)

    op = torch.randint(0, 3, (1,), generator=g_ref)
    brightness, saturation, contrast = rand() - 0.5, rand() * 2.0, rand() + 0.5
    crop = torch.stack([randint(-4, 5), randint(-4, 5)], dim=1)  # int(32 * 0.125 + 0.5) = 4
    cutout = torch.stack([randint(0, 33), randint(0, 33)], dim=1)  # 32 + (1 - 16 % 2)
    flip = rand()
    sx, sy = rand() * (1.2 - 1 / 1.2) + 1 / 1.2, rand() * (1.2 - 1 / 1.2) + 1 / 1.2
    rotate = (rand() - 0.5) * 2 * 15.0 / 180 * math.pi
    assert params.ops.tolist() == op.tolist() * 3
    for name, value in [("brightness", brightness), ("saturation", saturation), ("contrast", contrast),
                        ("crop", crop), ("cutout", cutout), ("flip", flip), ("scale", torch.stack([sx, sy], 1)),
                        ("rotate", rotate)]:
        assert torch.equal(getattr(params, name), value), name
    g = gen(8)
    aug.sample(3, g, image_size=SIZE)
    assert torch.equal(g.get_state(), g_ref.get_state())  # nothing else drawn


# ---------------------------------------------------------------------------------------------------------------
# Cutout on every image
# ---------------------------------------------------------------------------------------------------------------


def test_cutout_zeroes_its_square_in_every_image() -> None:
    aug = IDCAugment("cutout")
    n = 48
    x = torch.ones(n, 3, *SIZE)
    p = aug.sample(n, gen(9), image_size=SIZE)
    out = aug(x, gen(9))
    zero = out == 0
    assert bool((zero == zero[:, :1]).all())  # the same pixels in every channel
    areas = []
    for i in range(n):
        centre = (int(p.cutout[i, 0]), int(p.cutout[i, 1]))
        mask = covered_mask(*SIZE, centre, CUT)
        assert torch.equal(zero[i, 0], mask), i
        rows, cols = mask.any(1).sum().item(), mask.any(0).sum().item()
        assert mask.sum().item() == rows * cols  # one rectangle
        if all(8 <= c <= 24 for c in centre):  # rows o - 8 .. o + 7 (and the columns) fit in 0 .. 31
            assert (rows, cols) == (16, 16)
        else:  # clipped at an edge, never below half the side (the centre lies in 0 .. 32)
            assert 8 <= min(rows, cols) < 16 and max(rows, cols) <= 16
        areas.append(mask.sum().item())
    assert min(areas) >= 64 and 256 in areas and min(areas) < 256  # every image cut; some clipped, some whole


def test_matching_cutout_is_in_every_image_of_the_batch() -> None:
    aug = IDCAugment("color_crop_cutout")
    x = images(8) + 20.0  # no zero anywhere before the augmentation (crop adds a zero border, cutout a square)
    params = aug.sample(1, gen(10), image_size=SIZE)
    out = aug.apply(x, params)
    mask = covered_mask(*SIZE, (int(params.cutout[0, 0]), int(params.cutout[0, 1])), CUT)
    assert bool((out[:, :, mask] == 0).all())
    inside_crop = apply_crop(torch.ones(1, 1, *SIZE), params.crop)[0, 0] > 0  # where the translation kept pixels
    assert bool((out[:, :, inside_crop & ~mask] != 0).all())  # nothing else is zero


# ---------------------------------------------------------------------------------------------------------------
# batch=True (one parameter set) vs batch=False (per image)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["color_crop_cutout", EVAL])
def test_one_parameter_set_transforms_every_batch_alike(strategy: str) -> None:
    aug = IDCAugment(strategy)
    params = aug.sample(1, gen(11), image_size=SIZE)
    same = images(1).expand(4, -1, -1, -1).contiguous()
    out = aug.apply(same, params)
    assert all(torch.equal(out[0], out[i]) for i in range(1, 4))  # identical inputs, identical outputs
    real, syn = images(5, seed=1), images(3, seed=2)
    for batch in (real, syn):
        p = expand(params, batch.shape[0])
        x = apply_flip(batch, p.flip) if "flip" in aug.always else batch
        x = drawn(aug.ops[int(params.ops[0])], color(x, p), p)
        if "cutout" in aug.always:
            x = apply_cutout(x, p.cutout, CUT)
        assert torch.equal(aug.apply(batch, params), x)
    both = aug.apply(torch.cat([real, syn]), params)  # the siamese use: real and synthetic in one call
    torch.testing.assert_close(both, torch.cat([aug.apply(real, params), aug.apply(syn, params)]), rtol=0, atol=1e-6)


def test_per_image_parameters_differ_between_identical_images() -> None:
    aug = IDCAugment("color_crop_cutout")
    same = images(1).expand(6, -1, -1, -1).contiguous()
    out = aug(same, gen(12))
    assert all(not torch.equal(out[i], out[j]) for i in range(6) for j in range(i))


def test_reproducible_from_the_generator_and_global_rng_untouched() -> None:
    x = images(6)
    torch.manual_seed(321)
    state = torch.get_rng_state()
    for strategy in ("color_crop_cutout", "color_crop", EVAL):
        aug = IDCAugment(strategy)
        a, b = aug(x, gen(13)), aug(x, gen(13))
        assert torch.equal(a, b)
        assert not torch.equal(a, aug(x, gen(14)))
        p, q = aug.sample(1, gen(15), image_size=SIZE), aug.sample(1, gen(15), image_size=SIZE)
        assert torch.equal(aug.apply(x, p), aug.apply(x, q))
    assert torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------------------------


def test_params_of_another_strategy_are_refused() -> None:
    x = images(4)
    crop_only = IDCAugment("color_crop").sample(4, gen(16), image_size=SIZE)
    with pytest.raises(ValueError, match=r"sampled for ops \('crop',\).*draws from \('crop', 'scale', 'rotate'\)"):
        IDCAugment(EVAL).apply(x, crop_only)
    dsa_params = DSA("color_crop_cutout").sample(4, gen(16), image_size=SIZE)  # DSA's op list: all three ops
    with pytest.raises(ValueError, match=r"sampled for ops \('color', 'crop', 'cutout'\)"):
        IDCAugment("color_crop_cutout").apply(x, dsa_params)
    with pytest.raises(ValueError, match="sampled for ops"):
        IDCAugment("color_cutout").apply(x, crop_only)
    with pytest.raises(ValueError, match=r"image size \(32, 32\)"):
        IDCAugment("color_crop_cutout").apply(images(4, h=16, w=16), IDCAugment("color_crop_cutout").sample(
            4, gen(16), image_size=SIZE))
    with pytest.raises(ValueError, match="not a multiple"):
        IDCAugment("color_crop_cutout").apply(images(5), IDCAugment("color_crop_cutout").sample(
            2, gen(16), image_size=SIZE))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        IDCAugment("color_crop")(x[0], gen(16))


def test_params_of_another_image_size_are_refused_without_a_drawn_op() -> None:
    aug = IDCAugment("cutout")
    params = aug.sample(2, gen(17), image_size=SIZE)
    with pytest.raises(ValueError, match=r"image size \(32, 32\)"):
        aug.apply(torch.ones(2, 1, 8, 8), params)
