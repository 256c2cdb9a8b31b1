"""CMI (CMIDD): reference loops in float64, CMIDD's own kl_div formulation, zeros, invariances, gradients, CMILoss."""

from __future__ import annotations

import math
from typing import Literal

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_dd.losses import CMILoss, class_centroids, conditional_mutual_information

# Unequal class sizes (4, 1, 3, 2), class 2 absent, labels not sorted.
LABELS = [3, 0, 4, 0, 1, 3, 0, 4, 3, 0]
NUM_CLASSES = 5
Reduction = Literal["global", "per_class"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=gen(seed), dtype=torch.float64)


def ref_cmi(outputs: torch.Tensor, labels: list[int], temperature: float, reduction: Reduction) -> float:
    """The definition with explicit Python loops over samples, classes and dimensions (float64 Python floats)."""
    rows = outputs.tolist()
    probs = []
    for row in rows:
        z = [v / temperature for v in row]
        top = max(z)
        e = [math.exp(v - top) for v in z]
        s = sum(e)
        probs.append([v / s for v in e])
    dim = len(rows[0])
    total = 0.0
    for c in sorted(set(labels)):
        members = [i for i, y in enumerate(labels) if y == c]
        q = [sum(probs[i][k] for i in members) / len(members) for k in range(dim)]
        class_sum = 0.0
        for i in members:
            kl = 0.0
            for k in range(dim):
                p = probs[i][k]
                kl += p * (math.log(p) - math.log(q[k]))
            class_sum += kl
        total += class_sum / len(members) if reduction == "per_class" else class_sum
    return total / len(labels) if reduction == "global" else total


@pytest.mark.parametrize("reduction", ["global", "per_class"])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_matches_reference_loops(reduction: Reduction, temperature: float) -> None:
    labels = torch.tensor(LABELS)
    for seed in range(3):
        outputs = randn(len(LABELS), 7, seed=seed, scale=2.0)
        got = conditional_mutual_information(outputs, labels, NUM_CLASSES, temperature, reduction)
        want = ref_cmi(outputs, LABELS, temperature, reduction)
        assert got.shape == ()
        assert want > 1e-3
        assert got.item() == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_reductions_differ_by_class_weights() -> None:
    outputs, labels = randn(len(LABELS), 5, seed=1), torch.tensor(LABELS)
    g = conditional_mutual_information(outputs, labels, NUM_CLASSES, reduction="global")
    p = conditional_mutual_information(outputs, labels, NUM_CLASSES, reduction="per_class")
    assert not torch.allclose(g, p)


def test_class_centroids_against_loop() -> None:
    probs = torch.softmax(randn(len(LABELS), 4, seed=2), dim=1).requires_grad_(True)
    cent = class_centroids(probs, torch.tensor(LABELS), NUM_CLASSES)
    assert cent.shape == (NUM_CLASSES, 4)
    for c in range(NUM_CLASSES):
        members = [i for i, y in enumerate(LABELS) if y == c]
        if members:
            want = torch.stack([probs[i] for i in members]).mean(0)
            torch.testing.assert_close(cent[c], want, rtol=0, atol=1e-15)
        else:
            assert torch.equal(cent[c], torch.zeros(4, dtype=torch.float64))
    # Not detached: d(sum of class-0 centroid)/d(probs) = 1/|S_0| on class-0 rows, 0 elsewhere.
    cent[0].sum().backward()
    want_grad = torch.tensor([[0.25] * 4 if y == 0 else [0.0] * 4 for y in LABELS], dtype=torch.float64)
    torch.testing.assert_close(probs.grad, want_grad)


@pytest.mark.parametrize("reduction", ["global", "per_class"])
def test_nonnegative_on_many_draws(reduction: Reduction) -> None:
    g = gen(7)
    for _ in range(150):
        n = int(torch.randint(2, 12, (1,), generator=g))
        d = int(torch.randint(2, 10, (1,), generator=g))
        scale = float(torch.empty(()).uniform_(1e-4, 30.0, generator=g))
        outputs = scale * torch.randn(n, d, generator=g)
        labels = torch.randint(0, 3, (n,), generator=g)
        temperature = float(torch.empty(()).uniform_(0.1, 5.0, generator=g))
        value = conditional_mutual_information(outputs, labels, 3, temperature, reduction)
        assert torch.isfinite(value) and value.item() >= 0.0


@pytest.mark.parametrize("reduction", ["global", "per_class"])
def test_zero_with_one_image_per_class(reduction: Reduction) -> None:
    outputs = torch.randn(6, 9, generator=gen(3)) * 5
    labels = torch.tensor([4, 1, 0, 5, 2, 3])
    value = conditional_mutual_information(outputs, labels, 6, reduction=reduction)
    assert value.item() == 0.0


@pytest.mark.parametrize("reduction", ["global", "per_class"])
def test_zero_when_images_of_a_class_are_identical(reduction: Reduction) -> None:
    base = torch.randn(3, 11, generator=gen(4)) * 3
    labels = torch.tensor([2, 0, 1, 0, 2, 0, 1])
    outputs = base[labels].clone().requires_grad_(True)
    value = conditional_mutual_information(outputs, labels, 3, reduction=reduction)
    assert value.item() >= 0.0
    assert value.item() == pytest.approx(0.0, abs=1e-7)
    value.backward()
    assert torch.isfinite(outputs.grad).all()


@pytest.mark.parametrize("reduction", ["global", "per_class"])
def test_permutation_invariance(reduction: Reduction) -> None:
    outputs, labels = randn(len(LABELS), 6, seed=5), torch.tensor(LABELS)
    ref = conditional_mutual_information(outputs, labels, NUM_CLASSES, reduction=reduction)
    # Reorder the samples within class 0 only (labels unchanged).
    idx = torch.arange(len(LABELS))
    pos0 = (labels == 0).nonzero().squeeze(1)
    idx[pos0] = pos0.flip(0)
    assert not torch.equal(idx, torch.arange(len(LABELS)))
    within = conditional_mutual_information(outputs[idx], labels, NUM_CLASSES, reduction=reduction)
    # Permute the whole set together with the labels.
    perm = torch.randperm(len(LABELS), generator=gen(6))
    across = conditional_mutual_information(outputs[perm], labels[perm], NUM_CLASSES, reduction=reduction)
    torch.testing.assert_close(within, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(across, ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("reduction", ["global", "per_class"])
def test_gradient_reaches_inputs_and_passes_gradcheck(reduction: Reduction) -> None:
    outputs = randn(len(LABELS), 6, seed=8).requires_grad_(True)
    conditional_mutual_information(outputs, torch.tensor(LABELS), NUM_CLASSES, reduction=reduction).backward()
    grad = outputs.grad
    assert grad is not None and torch.isfinite(grad).all()
    # Every class with >= 2 images moves; the singleton class (1) has zero gradient.
    for i, y in enumerate(LABELS):
        assert (grad[i].abs().sum() > 1e-8) == (y != 1)

    tiny = randn(5, 3, seed=9).requires_grad_(True)
    tiny_labels = torch.tensor([1, 0, 1, 0, 1])
    assert torch.autograd.gradcheck(
        lambda x: conditional_mutual_information(x, tiny_labels, 2, 0.7, reduction),
        (tiny,),
    )


def test_matches_cmidd_kl_div_formulation() -> None:
    num_classes, ipc, d = 3, 4, 16
    f = torch.randn(num_classes * ipc, d, generator=gen(10)) * 2  # class-sorted [c*ipc:(c+1)*ipc]
    labels = torch.arange(num_classes).repeat_interleave(ipc)

    # CMIDD DC-DSA-DM/main_DM.py: batchmean over the whole set.
    p = torch.softmax(f, dim=1)
    q = p.reshape(num_classes, ipc, -1).mean(1)
    log_q = q.log()[:, None, :].expand(-1, ipc, -1).reshape(-1, d)
    cmidd = F.kl_div(log_q, F.log_softmax(f, 1), reduction="batchmean", log_target=True)
    torch.testing.assert_close(conditional_mutual_information(f, labels, num_classes), cmidd, rtol=1e-5, atol=1e-7)

    # CMIDD IDC/condense.py: the same batchmean per class, summed over the per-class steps.
    idc = sum(
        F.kl_div(
            p[c * ipc : (c + 1) * ipc].mean(0).log().expand(ipc, -1),
            F.log_softmax(f[c * ipc : (c + 1) * ipc], 1),
            reduction="batchmean",
            log_target=True,
        )
        for c in range(num_classes)
    )
    got = conditional_mutual_information(f, labels, num_classes, reduction="per_class")
    torch.testing.assert_close(got, idc, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got, num_classes * cmidd, rtol=1e-5, atol=1e-7)  # equal sizes: C x global


class TinyProxy(nn.Module):
    """Frozen-proxy stand-in with distinct ``embed`` (8-d features) and ``forward`` (3 logits); records calls."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(12, 8))
        self.classifier = nn.Linear(8, 3)
        g = gen(12)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.calls: list[str] = []

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append("embed")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append("forward")
        return self.classifier(self.body(x))


@pytest.mark.parametrize(("output", "method"), [("features", "embed"), ("logits", "forward")])
def test_cmiloss_uses_embed_or_forward(output: str, method: str) -> None:
    proxy = TinyProxy().requires_grad_(False)
    images = torch.randn(6, 3, 2, 2, generator=gen(11), requires_grad=True)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    loss = CMILoss(output=output, temperature=0.5, reduction="per_class")  # type: ignore[arg-type]
    value = loss(images, labels, proxy, 2)
    assert proxy.calls == [method]
    with torch.no_grad():
        vec = proxy.body(images) if output == "features" else proxy.classifier(proxy.body(images))
    want = conditional_mutual_information(vec, labels, 2, temperature=0.5, reduction="per_class")
    torch.testing.assert_close(value, want)
    value.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in proxy.parameters())


def test_errors() -> None:
    x, labels = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match="reduction"):
        conditional_mutual_information(x, labels, 2, reduction="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="temperature"):
        conditional_mutual_information(x, labels, 2, temperature=0.0)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        conditional_mutual_information(x, torch.tensor([0, 1, 2, 1]), 2)
    with pytest.raises(TypeError, match="integer"):
        conditional_mutual_information(x, labels.float(), 2)
    with pytest.raises(ValueError, match="shape"):
        conditional_mutual_information(x, labels[:3], 2)
    with pytest.raises(ValueError, match="output"):
        CMILoss(output="probs")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="embed"):
        CMILoss()(torch.randn(2, 3), torch.tensor([0, 0]), nn.Linear(3, 3), 1)


def test_validate_args_false_skips_only_the_value_check_and_the_module_checks_once() -> None:
    import lightning_dd.losses.cmi as cmi_module

    outputs = torch.randn(6, 4)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    bad = torch.tensor([0, 0, 1, 1, 2, 7])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        conditional_mutual_information(outputs, bad, 3)
    with pytest.raises(ValueError, match="shape"):  # shape checks are free and always run
        conditional_mutual_information(outputs, labels[:5], 3, validate_args=False)
    value = conditional_mutual_information(outputs, labels, 3, validate_args=False)
    assert torch.equal(value, conditional_mutual_information(outputs, labels, 3))

    calls: list[bool] = []
    original = cmi_module.conditional_mutual_information

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs["validate_args"])
        return original(*args, **kwargs)

    loss = CMILoss(output="logits")
    proxy = torch.nn.Linear(4, 4)
    cmi_module.conditional_mutual_information = spy
    try:
        for _ in range(3):
            loss(outputs, labels, proxy, 3)
    finally:
        cmi_module.conditional_mutual_information = original
    assert calls == [True, False, False]
