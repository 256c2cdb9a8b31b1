"""Gradient-matching distances against independent float64 loops, and their gradients by finite differences."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_dd.losses import (
    GRADIENT_METRICS,
    class_gradient_distances,
    class_gradients,
    gradient_distance,
    gradient_distances,
    layer_distance,
    matched_parameters,
)
from lightning_dd.networks import create_network

SHAPES = [(4, 3, 3, 3), (4,), (5, 2, 6), (10, 8), (10,)]  # conv weight, bias, (c, h, w), linear weight, bias


def grads(seed: int, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=dtype) for shape in SHAPES]


def ours_by_loops(real: list[torch.Tensor], syn: list[torch.Tensor], eps: float = 1e-6) -> float:
    total = 0.0
    for r, s in zip(real, syn, strict=True):
        if r.dim() == 1:
            continue  # biases and norm parameters do not count
        rows = r.shape[0]
        for i in range(rows):
            a, b = r[i].flatten().tolist(), s[i].flatten().tolist()
            dot = sum(x * y for x, y in zip(a, b, strict=True))
            na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
            total += 1 - dot / (na * nb + eps)
    return total


def test_ours_equals_the_row_by_row_definition() -> None:
    real, syn = grads(0), grads(1)
    assert float(gradient_distance(syn, real, "ours")) == pytest.approx(ours_by_loops(real, syn), rel=1e-12)
    assert float(layer_distance(real[1], syn[1])) == 0.0  # a 1-D parameter
    assert float(gradient_distance(real, real, "ours")) == pytest.approx(ours_by_loops(real, real), rel=1e-9)
    assert 0 < ours_by_loops(real, real) < 1e-4  # identical gradients: only the eps guard remains


def test_mse_and_cos_equal_their_definitions() -> None:
    real, syn = grads(0), grads(1)
    r = [x for g in real for x in g.flatten().tolist()]
    s = [x for g in syn for x in g.flatten().tolist()]
    mse = sum((b - a) ** 2 for a, b in zip(r, s, strict=True))
    dot = sum(a * b for a, b in zip(r, s, strict=True))
    cos = 1 - dot / (math.sqrt(sum(a * a for a in r)) * math.sqrt(sum(b * b for b in s)) + 1e-6)
    assert float(gradient_distance(syn, real, "mse")) == pytest.approx(mse, rel=1e-12)
    assert float(gradient_distance(syn, real, "cos")) == pytest.approx(cos, rel=1e-12)


@pytest.mark.parametrize("metric", GRADIENT_METRICS)
def test_the_distance_is_differentiable_in_the_synthetic_gradients(metric: str) -> None:
    real = grads(0)
    syn = [g.clone().requires_grad_(True) for g in grads(1)]
    assert torch.autograd.gradcheck(lambda *s: gradient_distance(list(s), real, metric), tuple(syn))


def test_second_order_through_a_real_network() -> None:
    """What DC does: the distance of CE gradients on a ConvNet, differentiated w.r.t. the synthetic images."""
    torch.manual_seed(0)
    net = create_network("convnet", 1, 10, (8, 8)).double()
    params = [p for p in net.parameters() if p.requires_grad]
    real_x, real_y = torch.randn(20, 1, 8, 8, dtype=torch.float64), torch.arange(20) % 10
    g_real = [g.detach() for g in torch.autograd.grad(
        torch.nn.functional.cross_entropy(net(real_x), real_y), params)]
    syn = torch.randn(10, 1, 8, 8, dtype=torch.float64, requires_grad=True)

    def distance(x: torch.Tensor) -> torch.Tensor:
        g_syn = torch.autograd.grad(torch.nn.functional.cross_entropy(net(x), torch.arange(10)), params,
                                    create_graph=True)
        return gradient_distance(list(g_syn), g_real, "ours")

    assert torch.autograd.gradcheck(distance, (syn,), eps=1e-6, atol=1e-5)


def test_bad_arguments_are_named() -> None:
    real, syn = grads(0), grads(1)
    with pytest.raises(ValueError, match="unknown gradient metric 'l2'; allowed: ours, mse, cos, l1"):
        gradient_distance(syn, real, "l2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="need as many synthetic as real gradients"):
        gradient_distance(syn[:2], real)
    with pytest.raises(ValueError, match=r"gradient shapes differ: real \(4, 3, 3, 3\), synthetic \(10, 8\)"):
        layer_distance(real[0], syn[3])


# ---------------------------------------------------------------------------------------------- per-class, batched
def tiny_net(classes: int = 3) -> torch.nn.Module:
    """A float64 ConvNet small enough for finite differences (1x8x8 inputs, width 4, one block)."""
    g = torch.Generator().manual_seed(0)
    return create_network("convnet", 1, classes, (8, 8), generator=g, width=4, depth=1).double()


def test_the_stacked_distances_equal_one_pair_at_a_time() -> None:
    real = [torch.stack([g, g * 0.5 + 1]) for g in grads(0)]
    syn = [torch.stack([g, -g]) for g in grads(1)]
    for metric in GRADIENT_METRICS:
        stacked = gradient_distances(syn, real, metric)
        one_by_one = [gradient_distance([s[i] for s in syn], [r[i] for r in real], metric) for i in range(2)]
        assert torch.allclose(stacked, torch.stack(one_by_one), rtol=1e-12, atol=0)
    flat_r = torch.cat([g[0].flatten() for g in real])
    flat_s = torch.cat([g[0].flatten() for g in syn])
    assert float(gradient_distances(syn, real, "l1")[0]) == pytest.approx(float((flat_s - flat_r).abs().sum()))


def test_class_gradients_equal_autograd_one_class_at_a_time() -> None:
    net = tiny_net()
    g = torch.Generator().manual_seed(1)
    images = torch.randn(3, 5, 1, 8, 8, generator=g, dtype=torch.float64)
    classes = torch.tensor([2, 0, 1])
    names = matched_parameters(net, "conv")
    assert names == ["features.0.weight"] or all("weight" in n for n in names)
    for batched in (False, True):
        got = class_gradients(net, images, classes, names, batched=batched)
        for i in range(3):
            loss = torch.nn.functional.cross_entropy(net(images[i]), classes[i].repeat(5))
            want = torch.autograd.grad(loss, [dict(net.named_parameters())[n] for n in names])
            for got_p, want_p in zip(got, want, strict=True):
                assert torch.allclose(got_p[i], want_p, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("metric", ["ours", "mse"])
def test_the_batched_path_equals_the_loop_in_values_and_image_gradients(metric: str) -> None:
    net = tiny_net()
    g = torch.Generator().manual_seed(2)
    real = torch.randn(3, 6, 1, 8, 8, generator=g, dtype=torch.float64)
    syn = torch.randn(3, 2, 1, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
    classes = torch.arange(3)
    loop = class_gradient_distances(net, real, syn, classes, metric=metric)
    (grad_loop,) = torch.autograd.grad(loop.sum(), syn)
    batched = class_gradient_distances(net, real, syn, classes, metric=metric, batched=True)
    (grad_batched,) = torch.autograd.grad(batched.sum(), syn)
    assert torch.allclose(loop, batched, rtol=1e-10, atol=1e-12)
    assert torch.allclose(grad_loop, grad_batched, rtol=1e-8, atol=1e-12)
    assert grad_loop.abs().sum() > 0


@pytest.mark.parametrize("metric", ["ours", "mse"])
def test_the_matching_loss_reaches_the_images_through_the_second_order_path(metric: str) -> None:
    """Finite differences of the whole loss (CE gradients inside) against autograd's double backward."""
    net = tiny_net()
    g = torch.Generator().manual_seed(3)
    real = torch.randn(3, 4, 1, 8, 8, generator=g, dtype=torch.float64)
    syn = torch.randn(3, 1, 1, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
    classes = torch.arange(3)
    assert torch.autograd.gradcheck(
        lambda s: class_gradient_distances(net, real, s, classes, metric=metric).sum(), (syn,), eps=1e-6, atol=1e-5)


def test_batched_gradients_refuse_batchnorm_in_train_mode() -> None:
    net = create_network("convnet_bn", 1, 3, (8, 8), generator=torch.Generator().manual_seed(0), width=4, depth=1)
    x = torch.randn(3, 4, 1, 8, 8)
    with pytest.raises(ValueError, match="BatchNorm layers in eval mode"):
        class_gradients(net.train(), x, torch.arange(3), batched=True)
    net.eval()
    loop = class_gradients(net, x, torch.arange(3))
    batched = class_gradients(net, x, torch.arange(3), batched=True)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(loop, batched, strict=True))
