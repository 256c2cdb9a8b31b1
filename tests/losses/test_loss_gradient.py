"""Gradient-matching distances against independent float64 loops, and their gradients by finite differences."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_dd.losses import GRADIENT_METRICS, gradient_distance, layer_distance
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
    with pytest.raises(ValueError, match="unknown gradient metric 'l1'; allowed: ours, mse, cos"):
        gradient_distance(syn, real, "l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="need as many synthetic as real gradients"):
        gradient_distance(syn[:2], real)
    with pytest.raises(ValueError, match=r"gradient shapes differ: real \(4, 3, 3, 3\), synthetic \(10, 8\)"):
        layer_distance(real[0], syn[3])
