"""Tests for lightning_dd.augment.dsa: siamese property, determinism, ranges, per-op math, gradients, parsing."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from lightning_dd.augment import DSA, OPS, STRATEGY_OPS, DSAConstants, DSAParams, ops, parse_strategy

FULL = "color_crop_cutout_flip_scale_rotate"
SIZE = (32, 32)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 6, c: int = 3, h: int = 32, w: int = 32, seed: int = 123) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=gen(seed))


def forced(dsa: DSA, op: str, params: DSAParams) -> DSAParams:
    """``params`` with every group's op set to ``op``."""
    return replace(params, ops=torch.full_like(params.ops, dsa.ops.index(op)))


# ---------------------------------------------------------------------------------------------------------------
# Independent reference computations
# ---------------------------------------------------------------------------------------------------------------


def ref_bilinear(x: torch.Tensor, theta: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """affine_grid + grid_sample(bilinear, zeros) written out by hand (no grid_sample / affine_grid)."""
    n, _, h, w = x.shape

    def base(size: int) -> torch.Tensor:
        i = torch.arange(size, dtype=x.dtype)
        return (2 * i / (size - 1) - 1) if align_corners else ((2 * i + 1) / size - 1)

    yn, xn = torch.meshgrid(base(h), base(w), indexing="ij")  # (H, W) normalised output coordinates
    out = torch.zeros_like(x)
    for b in range(n):
        t = theta[b].to(x.dtype)
        xs = t[0, 0] * xn + t[0, 1] * yn + t[0, 2]
        ys = t[1, 0] * xn + t[1, 1] * yn + t[1, 2]
        if align_corners:
            px, py = (xs + 1) / 2 * (w - 1), (ys + 1) / 2 * (h - 1)
        else:
            px, py = ((xs + 1) * w - 1) / 2, ((ys + 1) * h - 1) / 2
        x0, y0 = torch.floor(px).long(), torch.floor(py).long()
        fx, fy = px - x0, py - y0
        for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            xi, yi = x0 + dx, y0 + dy
            valid = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            vals = x[b][:, yi.clamp(0, h - 1), xi.clamp(0, w - 1)]  # (C, H, W)
            out[b] += vals * (wgt * valid)
    return out


def ref_crop(x: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """out[i, j] = x[i + tr, j + tc], zero outside, via torch.roll + zeroing."""
    tr, tc = shift
    h, w = x.shape[-2:]
    y = torch.roll(x, shifts=(-tr, -tc), dims=(-2, -1)).clone()
    rows = torch.arange(h) + tr
    cols = torch.arange(w) + tc
    y[..., (rows < 0) | (rows >= h), :] = 0
    y[..., :, (cols < 0) | (cols >= w)] = 0
    return y


def ref_cutout_mask(h: int, w: int, offset: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """The reference's scatter: mask[clamp(o - s // 2 + i, 0, H - 1), clamp(...)] = 0."""
    gi, gj = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
    gi = (gi + offset[0] - size[0] // 2).clamp(0, h - 1)
    gj = (gj + offset[1] - size[1] // 2).clamp(0, w - 1)
    mask = torch.ones(h, w)
    mask[gi, gj] = 0
    return mask


# ---------------------------------------------------------------------------------------------------------------
# Strategy parsing
# ---------------------------------------------------------------------------------------------------------------


def test_strategy_parsing() -> None:
    assert DSA().ops == STRATEGY_OPS
    assert DSA("color_crop_cutout_scale_rotate").ops == ("color", "crop", "cutout", "scale", "rotate")
    assert DSA("flip").ops == ("flip",)
    for identity in ("", "none", "None", None):
        assert DSA(identity).ops == ()
    with pytest.raises(ValueError, match=r"'blur'.*color, crop, cutout, flip, scale, rotate"):
        DSA("color_blur")
    with pytest.raises(ValueError, match="''"):
        parse_strategy("color__crop")
    with pytest.raises(ValueError, match="'Color'"):
        DSA("Color")


def test_identity_strategy() -> None:
    assert DSA.identity().is_identity and DSA.identity().ops == ()
    dsa = DSA("none")
    x = images(4)
    state = torch.get_rng_state()
    g = gen()
    assert dsa(x, g) is x
    a, b = dsa.siamese(x, x[:2], generator=g)
    assert a is x and torch.equal(b, x[:2])
    p = dsa.sample(4, g, image_size=SIZE)
    assert dsa.apply(x, p) is x
    assert torch.equal(g.get_state(), gen().get_state())  # identity draws nothing
    assert torch.equal(torch.get_rng_state(), state)


# ---------------------------------------------------------------------------------------------------------------
# Siamese property / grouping
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", STRATEGY_OPS)
def test_siamese_same_params_same_output(op: str) -> None:
    dsa = DSA(op)
    a = images(5)
    b = images(3, seed=7)
    p = dsa.sample(1, gen(1), image_size=SIZE)
    # a batch and a different batch containing the same images: identical per-image outputs
    both = dsa.apply(torch.cat([a, b]), p)
    torch.testing.assert_close(both[:5], dsa.apply(a, p), rtol=0, atol=1e-6)
    torch.testing.assert_close(both[5:], dsa.apply(b, p), rtol=0, atol=1e-6)
    perm = torch.tensor([2, 0, 4, 1, 3])
    torch.testing.assert_close(dsa.apply(a[perm], p), dsa.apply(a, p)[perm], rtol=0, atol=1e-6)
    # siamese(a, a) gives identical outputs, and they equal apply() with the params drawn from the same seed
    ra, rb = dsa.siamese(a, a.clone(), generator=gen(1))
    assert torch.equal(ra, rb)
    assert torch.equal(ra, dsa.apply(a, p))


def test_siamese_full_strategy_every_op() -> None:
    dsa = DSA(FULL)
    a = images(4)
    seen = set()
    for seed in range(40):
        ra, rb, rc = dsa.siamese(a, a.clone(), a[:2], generator=gen(seed))
        assert torch.equal(ra, rb)
        torch.testing.assert_close(rc, ra[:2], rtol=0, atol=1e-6)
        seen.add(dsa.ops[int(dsa.sample(1, gen(seed), image_size=SIZE).ops)])
    assert seen == set(STRATEGY_OPS)


def test_siamese_one_op_and_one_parameter_set() -> None:
    dsa = DSA("color")
    a = torch.zeros(3, 3, 4, 4)
    out = dsa.siamese(a, generator=gen(3))[0]
    # one shared brightness shift (and saturation / contrast leave a constant image unchanged)
    assert torch.unique(out).numel() == 1


@pytest.mark.parametrize("op", STRATEGY_OPS)
@pytest.mark.parametrize("k", [1, 3])
def test_groups_equal_per_group_slices(op: str, k: int) -> None:
    dsa = DSA(op)
    g_count = 6
    x = images(g_count * k)
    p = dsa.sample(g_count, gen(5), image_size=SIZE)
    out = dsa.apply(x, p)
    for g in range(g_count):
        sl = slice(g * k, (g + 1) * k)
        torch.testing.assert_close(out[sl], dsa.apply(x[sl], p[g : g + 1]), rtol=0, atol=1e-6)
    # groups really differ (each group has its own parameters)
    assert any(not torch.allclose(out[:k], dsa.apply(x[:k], p[h : h + 1])) for h in range(1, g_count))


@pytest.mark.parametrize("k", [1, 2])
def test_mixed_ops_equal_per_group_slices(k: int) -> None:
    dsa = DSA(FULL)
    g_count = 12
    x = images(g_count * k, h=8, w=8).requires_grad_(True)
    p = dsa.sample(g_count, gen(3), image_size=(8, 8))
    assert len(torch.unique(p.ops)) == len(STRATEGY_OPS)  # the grouped path, every op present
    out = dsa.apply(x, p)
    for g in range(g_count):
        sl = slice(g * k, (g + 1) * k)
        torch.testing.assert_close(out[sl], dsa.apply(x[sl], p[g : g + 1]), rtol=0, atol=1e-6)
    # forcing one op through the whole batch equals per-group application of that op
    for op in STRATEGY_OPS:
        pf = forced(dsa, op, p)
        ref = torch.cat([dsa.apply(x[g * k : (g + 1) * k], pf[g : g + 1]) for g in range(g_count)])
        torch.testing.assert_close(dsa.apply(x, pf), ref, rtol=0, atol=1e-6)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_params_indexing_and_to() -> None:
    dsa = DSA()
    p = dsa.sample(6, gen(), image_size=SIZE)
    q = p[2:4]
    assert q.num_groups == len(q) == 2
    assert torch.equal(q.crop, p.crop[2:4]) and torch.equal(q.scale, p.scale[2:4])
    assert q.op_names == p.op_names and q.image_size == p.image_size
    r = p[torch.tensor([5, 0])]
    assert torch.equal(r.rotate, p.rotate[[5, 0]])
    moved = p.to("cpu")
    assert all(torch.equal(getattr(moved, f), getattr(p, f)) for f in ("ops", "brightness", "cutout"))
    with pytest.raises(TypeError):
        p[0]  # type: ignore[index]
    with pytest.raises(ValueError, match="leading dim"):
        replace(p, flip=p.flip[:3])


# ---------------------------------------------------------------------------------------------------------------
# Determinism and RNG hygiene
# ---------------------------------------------------------------------------------------------------------------


def _params_equal(a: DSAParams, b: DSAParams) -> bool:
    names = ("ops", "brightness", "saturation", "contrast", "crop", "cutout", "flip", "scale", "rotate")
    return all(torch.equal(getattr(a, n), getattr(b, n)) for n in names)


def test_determinism_and_global_rng_untouched() -> None:
    dsa = DSA()
    x = images(8)
    state = torch.get_rng_state()
    p1 = dsa.sample(8, gen(42), image_size=SIZE)
    p2 = dsa.sample(8, gen(42), image_size=SIZE)
    p3 = dsa.sample(8, gen(43), image_size=SIZE)
    assert _params_equal(p1, p2)
    assert not _params_equal(p1, p3)
    assert torch.equal(dsa.apply(x, p1), dsa.apply(x, p2))
    assert torch.equal(dsa(x, gen(7)), dsa(x, gen(7)))
    assert torch.equal(dsa.siamese(x, generator=gen(7))[0], dsa.siamese(x, generator=gen(7))[0])
    outs = {dsa(x, gen(s)).sum().item() for s in range(6)}
    assert len(outs) > 1
    # a generator advances: consecutive calls differ
    g = gen(0)
    assert not _params_equal(dsa.sample(8, g, image_size=SIZE), dsa.sample(8, g, image_size=SIZE))
    assert torch.equal(torch.get_rng_state(), state)


def test_draw_count_independent_of_op_outcome() -> None:
    # after sampling, the generator is in the same state whatever ops were drawn
    states = set()
    for strategy in ("color", "crop", FULL, "flip_rotate"):
        g = gen(3)
        DSA(strategy).sample(5, g, image_size=SIZE)
        states.add(g.get_state().sum().item())
    assert len(states) == 1
    # shared_op draws a single op index
    g_shared, g_each = gen(3), gen(3)
    DSA().sample(1, g_shared, shared_op=True, image_size=SIZE)
    DSA().sample(1, g_each, image_size=SIZE)
    assert torch.equal(g_shared.get_state(), g_each.get_state())


# ---------------------------------------------------------------------------------------------------------------
# Parameter ranges and op choice
# ---------------------------------------------------------------------------------------------------------------


def test_parameter_ranges() -> None:
    n = 20000
    p = DSA().sample(n, gen(11), image_size=SIZE)
    for name, lo, hi in (
        ("brightness", -0.5, 0.5),
        ("saturation", 0.0, 2.0),
        ("contrast", 0.5, 1.5),
        ("flip", 0.0, 1.0),
    ):
        t = getattr(p, name)
        assert t.shape == (n,) and t.dtype == torch.float32
        assert t.min() >= lo and t.max() <= hi, name
        assert t.min() < lo + 0.01 and t.max() > hi - 0.01, name  # fills the range
    assert p.scale.shape == (n, 2)
    assert p.scale.min() >= 1 / 1.2 - 1e-6 and p.scale.max() <= 1.2 + 1e-6
    assert p.scale.min() < 1 / 1.2 + 0.01 and p.scale.max() > 1.2 - 0.01
    assert not torch.equal(p.scale[:, 0], p.scale[:, 1])  # sx, sy independent
    deg = p.rotate * 180 / math.pi
    assert deg.abs().max() <= 15 + 1e-4 and deg.min() < -14.9 and deg.max() > 14.9
    assert p.crop.dtype == torch.long and p.crop.shape == (n, 2)
    for col in range(2):
        assert set(p.crop[:, col].tolist()) == set(range(-4, 5))
    assert p.cutout.dtype == torch.long
    for col in range(2):
        assert set(p.cutout[:, col].tolist()) == set(range(0, 33))  # [0, H + (1 - 16 % 2))
    assert abs((p.flip < 0.5).float().mean().item() - 0.5) < 0.02


def test_ranges_follow_image_size_and_constants() -> None:
    p = DSA().sample(5000, gen(1), image_size=(28, 20))
    assert set(p.crop[:, 0].tolist()) == set(range(-4, 5))  # int(28 * 0.125 + 0.5) = 4
    assert set(p.crop[:, 1].tolist()) == set(range(-3, 4))  # int(20 * 0.125 + 0.5) = 3
    assert set(p.cutout[:, 1].tolist()) == set(range(0, 21))  # size 10, even -> [0, 21)
    dsa = DSA(constants=DSAConstants(ratio_cutout=0.35, ratio_rotate=30.0))
    p = dsa.sample(5000, gen(1), image_size=SIZE)
    assert set(p.cutout[:, 0].tolist()) == set(range(0, 32))  # size int(32 * 0.35 + 0.5) = 11, odd -> [0, 32)
    out = dsa.apply_op("cutout", torch.ones(1, 1, 32, 32), replace(p[:1], cutout=torch.tensor([[16, 16]])))
    assert int((out == 0).sum()) == 121
    assert (p.rotate * 180 / math.pi).abs().max() > 29


def test_op_choice_uniform_and_shared() -> None:
    dsa = DSA()
    n = 12000
    p = dsa.sample(n, gen(2), image_size=SIZE)
    counts = torch.bincount(p.ops, minlength=6).float()
    assert p.ops.dtype == torch.long
    assert ((counts / n - 1 / 6).abs() < 0.02).all(), counts
    g = gen(4)
    shared_ops = []
    for _ in range(600):
        q = dsa.sample(8, g, shared_op=True, image_size=SIZE)
        assert torch.unique(q.ops).numel() == 1
        shared_ops.append(int(q.ops[0]))
    freq = torch.bincount(torch.tensor(shared_ops), minlength=6).float() / 600
    assert ((freq - 1 / 6).abs() < 0.06).all(), freq
    # shared_op: per-sample parameters still differ
    assert torch.unique(q.brightness).numel() == 8


def test_call_uses_one_op_per_batch() -> None:
    dsa = DSA("flip_crop")
    x = images(16)
    g1, g2 = gen(8), gen(8)
    out = dsa(x, g1)
    p = dsa.sample(16, g2, shared_op=True, image_size=SIZE)
    assert torch.equal(out, dsa.apply(x, p))


# ---------------------------------------------------------------------------------------------------------------
# Per-op outputs against independent computations
# ---------------------------------------------------------------------------------------------------------------


def test_color_math() -> None:
    dsa = DSA("color")
    x = images(4)
    p = dsa.sample(4, gen(6), image_size=SIZE)
    # brightness alone (neutral saturation / contrast) is an additive shift
    pb = replace(p, saturation=torch.ones(4), contrast=torch.ones(4))
    torch.testing.assert_close(dsa.apply(x, pb), x + p.brightness.view(-1, 1, 1, 1), rtol=0, atol=1e-6)
    # saturation 0 -> every channel equals the channel mean; contrast 0.5 halves the deviation from the image mean
    ps = replace(p, brightness=torch.zeros(4), saturation=torch.zeros(4), contrast=torch.ones(4))
    torch.testing.assert_close(dsa.apply(x, ps), x.mean(1, keepdim=True).expand_as(x), rtol=0, atol=1e-6)
    pc = replace(p, brightness=torch.zeros(4), saturation=torch.ones(4), contrast=torch.full((4,), 0.5))
    m = x.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(dsa.apply(x, pc), (x + m) / 2, rtol=0, atol=1e-5)
    # the full sequence, written out per image
    out = dsa.apply(x, p)
    for i in range(4):
        y = x[i] + p.brightness[i]
        y = (y - y.mean(0)) * p.saturation[i] + y.mean(0)
        y = (y - y.mean()) * p.contrast[i] + y.mean()
        torch.testing.assert_close(out[i], y, rtol=0, atol=1e-5)


def test_flip_math() -> None:
    dsa = DSA("flip")
    x = images(200, c=1, h=4, w=4)
    p = dsa.sample(200, gen(3), image_size=(4, 4))
    out = dsa.apply(x, p)
    flipped = p.flip < 0.5
    assert torch.equal(out[flipped], torch.flip(x[flipped], dims=[3]))
    assert torch.equal(out[~flipped], x[~flipped])
    assert 0.4 < flipped.float().mean() < 0.6


def test_crop_math() -> None:
    dsa = DSA("crop")
    x = images(300, c=2)
    p = dsa.sample(300, gen(4), image_size=SIZE)
    out = dsa.apply(x, p)
    for i in range(300):
        assert torch.equal(out[i], ref_crop(x[i], tuple(p.crop[i].tolist()))), p.crop[i]
    # extreme shifts, hand-built: content moves and the border fills with zeros
    x1 = images(2)
    pe = replace(p[:2], crop=torch.tensor([[4, -4], [-4, 4]]))
    oe = dsa.apply(x1, pe)
    assert torch.equal(oe[0, :, :28, 4:], x1[0, :, 4:, :28]) and (oe[0, :, 28:] == 0).all()
    assert (oe[0, :, :, :4] == 0).all()
    assert torch.equal(oe[1, :, 4:, :28], x1[1, :, :28, 4:]) and (oe[1, :, :4] == 0).all()


def test_cutout_math() -> None:
    dsa = DSA("cutout")
    x = torch.ones(400, 3, 32, 32)
    p = dsa.sample(400, gen(5), image_size=SIZE)
    out = dsa.apply(x, p)
    for i in range(400):
        mask = ref_cutout_mask(32, 32, tuple(p.cutout[i].tolist()), (16, 16))
        assert torch.equal(out[i], mask.expand(3, -1, -1)), p.cutout[i]
    # fully inside: exactly a 16x16 square of zeros per channel, the rest untouched
    pc = replace(p[:1], cutout=torch.tensor([[16, 10]]))
    xc = images(1)
    oc = dsa.apply(xc, pc)
    assert int((oc[0, 0] == 0).sum()) == 256
    assert (oc[0, :, 8:24, 2:18] == 0).all()
    keep = torch.ones(32, 32, dtype=torch.bool)
    keep[8:24, 2:18] = False
    assert torch.equal(oc[0][:, keep], xc[0][:, keep])
    # clipped at the corner: 8x8 survives of the square
    pz = replace(p[:1], cutout=torch.tensor([[0, 0]]))
    assert int((dsa.apply(torch.ones(1, 1, 32, 32), pz) == 0).sum()) == 64
    # odd cutout size (H=30 -> 15): offsets in [0, 30)
    p_odd = dsa.sample(3000, gen(6), image_size=(30, 30))
    assert set(p_odd.cutout[:, 0].tolist()) == set(range(30))
    o_odd = dsa.apply(torch.ones(3000, 1, 30, 30), p_odd)
    for i in range(0, 3000, 97):
        assert torch.equal(o_odd[i, 0], ref_cutout_mask(30, 30, tuple(p_odd.cutout[i].tolist()), (15, 15)))


@pytest.mark.parametrize("align_corners", [False, True])
def test_scale_and_rotate_math(align_corners: bool) -> None:
    x = images(6, h=9, w=11).double()
    for op in ("scale", "rotate"):
        dsa = DSA(op, align_corners=align_corners)
        p = dsa.sample(6, gen(7), image_size=(9, 11))
        theta = torch.zeros(6, 2, 3, dtype=torch.float64)
        if op == "scale":
            theta[:, 0, 0], theta[:, 1, 1] = p.scale[:, 0], p.scale[:, 1]
        else:
            t = p.rotate.double()
            theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = t.cos(), -t.sin(), t.sin(), t.cos()
        torch.testing.assert_close(dsa.apply(x, p), ref_bilinear(x, theta, align_corners), rtol=0, atol=1e-10)
        # identity transform (t = 0, s = 1) leaves the image unchanged
        p0 = replace(p, rotate=torch.zeros(6), scale=torch.ones(6, 2))
        torch.testing.assert_close(dsa.apply(x, p0), x, rtol=0, atol=1e-10)


def test_rotate_direction() -> None:
    # a small positive angle samples the source at (cos t * x - sin t * y, sin t * x + cos t * y)
    dsa = DSA("rotate")
    x = torch.zeros(1, 1, 33, 33)
    x[0, 0, 16, 30] = 1.0  # a point on the positive x axis (right of the centre)
    p = replace(dsa.sample(1, gen(), image_size=(33, 33)), rotate=torch.tensor([math.radians(15.0)]))
    out = dsa.apply(x, p)[0, 0]
    # output (i, j) reads source rotated by +t; the point (r = 14 px right) appears at angle -t, i.e. above centre
    i, j = divmod(int(out.argmax()), 33)
    assert i < 16 and j > 16
    t = math.radians(15.0)
    theta = torch.tensor([[[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0]]])
    ref = ref_bilinear(x.double(), theta, False)
    torch.testing.assert_close(out.double(), ref[0, 0], rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Gradients, dtypes, validation
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", STRATEGY_OPS)
def test_gradcheck(op: str) -> None:
    dsa = DSA(op)
    p = dsa.sample(2, gen(12), image_size=(4, 5))
    if op == "flip":
        p = replace(p, flip=torch.tensor([0.2, 0.8]))
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64, generator=gen(1), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: dsa.apply(t, p), (x,), eps=1e-6, atol=1e-5)


def test_gradients_flow_through_call_and_siamese() -> None:
    dsa = DSA()
    for seed in range(12):
        x = images(4).requires_grad_(True)
        y = images(8, seed=5).requires_grad_(True)
        ax, ay = dsa.siamese(x, y, generator=gen(seed))
        (ax.sum() + ay.pow(2).sum() + dsa(x, gen(seed)).sum()).backward()
        assert x.grad is not None and y.grad is not None and y.grad.abs().sum() > 0


def test_dtype_preserved() -> None:
    for dtype in (torch.float64, torch.bfloat16):
        x = images(6).to(dtype)
        for op in STRATEGY_OPS:
            dsa = DSA(op)
            assert dsa(x, gen()).dtype == dtype


def test_validation_errors() -> None:
    dsa = DSA()
    p = dsa.sample(3, gen(), image_size=SIZE)
    with pytest.raises(ValueError, match="multiple"):
        dsa.apply(images(4), p)
    with pytest.raises(ValueError, match="image size"):
        dsa.apply(images(3, h=16, w=16), p)
    with pytest.raises(ValueError, match="sampled for ops"):
        DSA("color_crop").apply(images(3), p)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        dsa.apply(torch.zeros(3, 32, 32), p)
    with pytest.raises(ValueError, match="image size"):
        dsa.siamese(images(2), images(2, h=16, w=16), generator=gen())
    with pytest.raises(ValueError, match="at least one"):
        dsa.siamese(generator=gen())
    with pytest.raises(ValueError, match="index into"):
        dsa.apply(images(3), replace(p, ops=torch.tensor([0, 6, 1])))
    assert dsa.apply(images(0), p).shape[0] == 0


def test_one_op_table_drives_strategy_fields_and_dispatch() -> None:
    assert tuple(OPS) == STRATEGY_OPS == ("color", "crop", "cutout", "flip", "scale", "rotate")
    param_fields = {f for f in DSAParams.__dataclass_fields__ if f not in ("ops", "op_names", "image_size")}
    assert {f for op in OPS.values() for f in op.fields} == param_fields  # every parameter is read by one op
    x = images(4)
    p = DSA().sample(4, gen(3), image_size=SIZE)
    c = DSAConstants()
    direct = {
        "color": ops.apply_color(x, p.brightness, p.saturation, p.contrast),
        "crop": ops.apply_crop(x, p.crop),
        "cutout": ops.apply_cutout(x, p.cutout, ops.cutout_size(SIZE, c)),
        "flip": ops.apply_flip(x, p.flip, c.prob_flip),
        "scale": ops.apply_scale(x, p.scale, False),
        "rotate": ops.apply_rotate(x, p.rotate, False),
    }
    for name, expected in direct.items():
        assert torch.equal(DSA().apply_op(name, x, p), expected), name
        assert torch.equal(OPS[name].fn(x, {f: getattr(p, f) for f in OPS[name].fields}, c, False), expected)
    with pytest.raises(ValueError, match="unknown DSA op 'blur'"):
        DSA().apply_op("blur", x, p)
