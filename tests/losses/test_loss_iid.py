"""IID: L_CC and local covariance matching against explicit loops (float64), gradients, zeros, both L_CM paths."""

from __future__ import annotations

import math
from typing import Literal

import pytest
import torch

from lightning_dd.losses import (
    ClassCentralizationLoss,
    CovarianceMatchingLoss,
    class_centralization,
    covariance_matching,
    local_covariance,
)
from lightning_dd.losses.iid import _covariance_matching_loop

LABELS = [2, 0, 2, 3, 0, 2, 0, 2, 3]  # class sizes 3, 0, 4, 2 (class 1 absent, class 4 unused)
NUM_CLASSES = 5
Form = Literal["squared", "exp"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------------------
# L_CC
# ---------------------------------------------------------------------------------------------------------------


def ref_cc(features: torch.Tensor, labels: list[int], form: str, beta: float, scale: float) -> float:
    """sum_i f(||g_i - mu_{y_i}||^2) with Python loops over samples, classes and dimensions."""
    g = features.tolist()
    dim = len(g[0])
    total = 0.0
    for c in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == c]
        mu = [sum(g[i][k] for i in members) / len(members) for k in range(dim)]
        for i in members:
            d = sum((g[i][k] - mu[k]) ** 2 for k in range(dim))
            total += d if form == "squared" else max(math.exp(scale * d) - beta, 0.0)
    return total


def naive_cc_torch(features: torch.Tensor, labels: list[int], form: str, beta: float, scale: float) -> torch.Tensor:
    """Same loops with torch ops (autograd through the non-detached class mean)."""
    total = features.new_zeros(())
    for c in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == c]
        mu = torch.stack([features[i] for i in members]).mean(0)
        for i in members:
            d = ((features[i] - mu) ** 2).sum()
            total = total + (d if form == "squared" else torch.relu(torch.exp(scale * d) - beta))
    return total


@pytest.mark.parametrize(
    ("form", "beta", "scale"), [("squared", 0.0, 0.02), ("exp", 0.0, 0.02), ("exp", 3.0, 0.3), ("exp", 1.0, 0.05)]
)
def test_cc_matches_loops(form: Form, beta: float, scale: float) -> None:
    features = 2.0 * randn(len(LABELS), 4, seed=1)
    got = class_centralization(features, torch.tensor(LABELS), NUM_CLASSES, form, beta, scale)
    want = ref_cc(features, LABELS, form, beta, scale)
    assert got.shape == () and want > 0
    assert got.item() == pytest.approx(want, rel=1e-12)
    module = ClassCentralizationLoss(form, beta, scale)
    torch.testing.assert_close(module(features, torch.tensor(LABELS), NUM_CLASSES), got)


def test_cc_exp_hinge_is_active() -> None:
    # The ("exp", 3.0, 0.3) case above clips some but not all terms, so its loop comparison exercises the relu.
    features = 2.0 * randn(len(LABELS), 4, seed=1)
    mu = torch.stack([features[[j for j, c in enumerate(LABELS) if c == y]].mean(0) for y in LABELS])
    terms = torch.exp(0.3 * ((features - mu) ** 2).sum(1))
    assert (terms < 3.0).any() and (terms > 3.0).any()


def test_cc_zero_for_one_sample_per_class() -> None:
    features = randn(4, 6, seed=2)
    labels = torch.tensor([3, 0, 2, 1])
    assert class_centralization(features, labels, 4).item() == 0.0
    assert class_centralization(features, labels, 4, "exp", beta=1.0).item() == 0.0
    # beta = 0: exp(0) = 1 per sample.
    assert class_centralization(features, labels, 4, "exp", beta=0.0).item() == pytest.approx(4.0)


@pytest.mark.parametrize(("form", "beta", "scale"), [("squared", 0.0, 0.02), ("exp", 0.0, 0.2)])
def test_cc_gradient_through_non_detached_mean(form: Form, beta: float, scale: float) -> None:
    base = randn(len(LABELS), 3, seed=3)
    x = base.clone().requires_grad_(True)
    class_centralization(x, torch.tensor(LABELS), NUM_CLASSES, form, beta, scale).backward()
    y = base.clone().requires_grad_(True)
    naive_cc_torch(y, LABELS, form, beta, scale).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-12, atol=1e-14)
    if form == "exp":
        # A detached mean would give a different gradient for the exp form (for the squared form the
        # mean's contribution sums to zero, so only the exp form can tell them apart).
        z = base.clone().requires_grad_(True)
        mu = torch.stack([base[[j for j, c in enumerate(LABELS) if c == y_i]].mean(0) for y_i in LABELS])
        torch.relu(torch.exp(scale * ((z - mu) ** 2).sum(1)) - beta).sum().backward()
        assert not torch.allclose(z.grad, x.grad)


# ---------------------------------------------------------------------------------------------------------------
# Local covariance and L_CM
# ---------------------------------------------------------------------------------------------------------------


def ref_local_cov(maps: torch.Tensor) -> torch.Tensor:
    """(1/B) sum_b sum_p (x_bp - mu_p)(x_bp - mu_p)^T with explicit loops (maps: (B, C, P))."""
    b_count, c_count, p_count = maps.shape
    x = maps.tolist()
    cov = [[0.0] * c_count for _ in range(c_count)]
    for p in range(p_count):
        mu = [sum(x[b][c][p] for b in range(b_count)) / b_count for c in range(c_count)]
        for b in range(b_count):
            for i in range(c_count):
                for j in range(c_count):
                    cov[i][j] += (x[b][i][p] - mu[i]) * (x[b][j][p] - mu[j])
    return torch.tensor(cov, dtype=torch.float64) / b_count


def naive_cm(real: torch.Tensor, syn: torch.Tensor, real_labels: list[int], syn_labels: list[int]) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float64)
    for c in sorted(set(syn_labels)):
        r = real[[i for i, y in enumerate(real_labels) if y == c]].flatten(2)
        s = syn[[i for i, y in enumerate(syn_labels) if y == c]].flatten(2)
        total = total + ((ref_local_cov(r) - ref_local_cov(s)) ** 2).sum()
    return total


def test_local_covariance_against_loops() -> None:
    maps = randn(3, 4, 2, 3, seed=4)
    want = ref_local_cov(maps.flatten(2))
    torch.testing.assert_close(local_covariance(maps), want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(local_covariance(maps.flatten(2)), want, rtol=1e-12, atol=1e-14)
    # The official expression.
    d = maps.flatten(2) - maps.flatten(2).mean(0, keepdim=True)
    torch.testing.assert_close(local_covariance(maps), (d @ d.transpose(1, 2)).mean(0), rtol=1e-12, atol=1e-14)
    assert torch.equal(local_covariance(maps[:1]), torch.zeros(4, 4, dtype=torch.float64))


def make_maps(real_labels: list[int], syn_labels: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return randn(len(real_labels), 3, 2, 2, seed=seed), randn(len(syn_labels), 3, 2, 2, seed=seed + 100)


EQUAL_REAL = [1, 0, 3, 1, 0, 3, 3, 1, 0, 4]  # 3 each of 0, 1, 3; class 4 only real (ignored)
EQUAL_SYN = [3, 0, 1, 1, 0, 3]  # 2 each of 0, 1, 3 (shuffled)
UNEQUAL_REAL = [1, 0, 3, 1, 0, 3, 3, 1, 0, 0, 2]
UNEQUAL_SYN = [3, 0, 1, 1, 0, 0]  # counts 3, 2, 1


@pytest.mark.parametrize(("real_labels", "syn_labels"), [(EQUAL_REAL, EQUAL_SYN), (UNEQUAL_REAL, UNEQUAL_SYN)])
def test_covariance_matching_against_loops(real_labels: list[int], syn_labels: list[int]) -> None:
    real, syn = make_maps(real_labels, syn_labels, seed=5)
    got = covariance_matching(real, syn, torch.tensor(real_labels), torch.tensor(syn_labels), NUM_CLASSES)
    want = naive_cm(real, syn, real_labels, syn_labels)
    assert got.shape == () and want > 0
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    module_value = CovarianceMatchingLoss()(real, syn, torch.tensor(real_labels), torch.tensor(syn_labels), 5)
    torch.testing.assert_close(module_value, got)


@pytest.mark.parametrize(("real_labels", "syn_labels"), [(EQUAL_REAL, EQUAL_SYN), (UNEQUAL_REAL, UNEQUAL_SYN)])
def test_real_side_gets_no_gradient(real_labels: list[int], syn_labels: list[int]) -> None:
    real, syn = make_maps(real_labels, syn_labels, seed=6)
    real.requires_grad_(True)
    syn.requires_grad_(True)
    covariance_matching(real, syn, torch.tensor(real_labels), torch.tensor(syn_labels), NUM_CLASSES).backward()
    assert real.grad is None
    assert syn.grad is not None and syn.grad.abs().sum() > 0


def test_zero_when_real_and_syn_identical_per_class() -> None:
    labels = [2, 0, 1, 0, 2, 1, 1]
    syn = randn(len(labels), 4, 3, seed=7).requires_grad_(True)
    real = syn.detach().clone()
    value = covariance_matching(real, syn, torch.tensor(labels), torch.tensor(labels), 3)
    assert value.item() == 0.0
    # Same class groups, different sample order on the real side: still zero up to rounding.
    perm = torch.randperm(len(labels), generator=gen(8))
    shuffled = covariance_matching(real[perm], syn, torch.tensor(labels)[perm], torch.tensor(labels), 3)
    assert shuffled.item() == pytest.approx(0.0, abs=1e-20)


def test_loop_path_equals_vectorised_path() -> None:
    real, syn = make_maps(EQUAL_REAL, EQUAL_SYN, seed=9)
    real_labels, syn_labels = torch.tensor(EQUAL_REAL), torch.tensor(EQUAL_SYN)
    vectorised = covariance_matching(real, syn, real_labels, syn_labels, NUM_CLASSES)
    loop = _covariance_matching_loop(real.flatten(2), syn.flatten(2), real_labels, syn_labels, [0, 1, 3])
    torch.testing.assert_close(vectorised, loop, rtol=1e-12, atol=0)
    # Permuting samples (with their labels) on either side changes nothing.
    pr, ps = torch.randperm(len(EQUAL_REAL), generator=gen(10)), torch.randperm(len(EQUAL_SYN), generator=gen(11))
    permuted = covariance_matching(real[pr], syn[ps], real_labels[pr], syn_labels[ps], NUM_CLASSES)
    torch.testing.assert_close(permuted, vectorised, rtol=1e-12, atol=0)
    # Unequal counts (loop path) = sum of single-class calls (each taking the vectorised path).
    real, syn = make_maps(UNEQUAL_REAL, UNEQUAL_SYN, seed=12)
    real_labels, syn_labels = torch.tensor(UNEQUAL_REAL), torch.tensor(UNEQUAL_SYN)
    total = covariance_matching(real, syn, real_labels, syn_labels, NUM_CLASSES)
    parts = sum(
        covariance_matching(real, syn[syn_labels == c], real_labels, syn_labels[syn_labels == c], NUM_CLASSES)
        for c in (0, 1, 3)
    )
    torch.testing.assert_close(total, parts, rtol=1e-12, atol=0)


def test_errors() -> None:
    real, syn = randn(4, 3, 5), randn(2, 3, 5)
    with pytest.raises(ValueError, match="no real"):
        covariance_matching(real, syn, torch.tensor([0, 0, 1, 1]), torch.tensor([2, 0]), 3)
    with pytest.raises(ValueError, match="channels"):
        covariance_matching(real, randn(2, 4, 5), torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        local_covariance(randn(3, 4))
    with pytest.raises(ValueError, match="form"):
        class_centralization(randn(3, 2), torch.tensor([0, 1, 1]), 2, form="cube")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        class_centralization(randn(3, 2), torch.tensor([0, 1, 2]), 2)
