"""Trajectory matching (MTT): the plain unroll against a hand computation and finite differences, and the
constant-memory recomputation against the plain unroll (values, image and step-size gradients, memory)."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_dd.losses import (
    FlatStudent,
    constant_memory_trajectory_loss,
    flat_parameters,
    parameter_matching_loss,
    unrolled_trajectory_loss,
)
from lightning_dd.networks import create_network

LOSSES = {"plain": unrolled_trajectory_loss, "constant_memory": constant_memory_trajectory_loss}


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.GroupNorm(3, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, 3)).double()


def problem(net: nn.Module, n: int = 6, shape: tuple[int, ...] = (2, 4, 4), classes: int = 3) -> tuple:
    g = torch.Generator().manual_seed(1)
    student = FlatStudent(net)
    start = flat_parameters(net)
    target = start + 0.05 * torch.randn(start.shape, generator=g, dtype=start.dtype)
    images = torch.randn(n, *shape, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.arange(n) % classes
    lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    # minibatches that reuse images across steps, with a differentiable "augmentation"
    chunks = [torch.randperm(n, generator=g)[: n // 2] for _ in range(4)]
    gains = [1.0 + 0.1 * i for i in range(4)]

    def batch(step: int, x: Tensor) -> tuple[Tensor, Tensor]:
        idx = chunks[step % 4]
        return torch.tanh(x[idx]) * gains[step % 4], labels[idx]

    return student, images, lr, start, target, batch


def gradients(name: str, steps: int, *args: object) -> tuple[Tensor, Tensor, Tensor]:
    student, images, lr, start, target, batch = args
    loss = LOSSES[name](student, images, lr, start, target, steps, batch)
    g_images, g_lr = torch.autograd.grad(loss, (images, lr))
    return loss.detach(), g_images, g_lr


def rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.mark.parametrize("steps", [1, 7])
def test_constant_memory_equals_the_plain_unroll_in_float64(steps: int) -> None:
    args = problem(tiny_net())
    plain = gradients("plain", steps, *args)
    constant = gradients("constant_memory", steps, *args)
    assert abs(float(plain[0] - constant[0])) <= 1e-12 * abs(float(plain[0]))
    assert rel(constant[1], plain[1]) <= 1e-5 and rel(constant[2], plain[2]) <= 1e-5
    assert plain[1].abs().sum() > 0 and plain[2].abs() > 0  # gradients that can tell a difference


def test_constant_memory_equals_the_plain_unroll_on_a_convnet() -> None:
    net = create_network("convnet", 3, 4, (8, 8), generator=torch.Generator().manual_seed(0)).double()
    args = problem(net, n=8, shape=(3, 8, 8), classes=4)
    plain = gradients("plain", 5, *args)
    constant = gradients("constant_memory", 5, *args)
    assert rel(constant[1], plain[1]) <= 1e-5 and rel(constant[2], plain[2]) <= 1e-5


def test_one_step_equals_a_hand_computation() -> None:
    """theta_1 = theta_0 - lr * grad CE on the module itself (no FlatStudent), then the normalised distance."""
    net = tiny_net()
    student, images, lr, start, target, batch = problem(net)
    loss = unrolled_trajectory_loss(student, images, lr, start, target, 1, batch)
    x, y = batch(0, images)
    grads = torch.autograd.grad(F.cross_entropy(net(x), y), list(net.parameters()), create_graph=True)
    theta1 = start - lr * torch.cat([g.reshape(-1) for g in grads])
    expected = (theta1 - target).pow(2).sum() / (start - target).pow(2).sum()
    assert torch.allclose(loss, expected, rtol=1e-12)
    assert torch.allclose(torch.autograd.grad(loss, images)[0], torch.autograd.grad(expected, images)[0], rtol=1e-9)


@pytest.mark.parametrize("name", list(LOSSES))
def test_image_and_lr_gradients_match_finite_differences(name: str) -> None:
    student, images, lr, start, target, batch = problem(tiny_net())
    steps = 3
    _, g_images, g_lr = gradients(name, steps, student, images, lr, start, target, batch)

    def value(x: Tensor, alpha: Tensor) -> float:
        with torch.enable_grad():
            return float(unrolled_trajectory_loss(student, x, alpha, start, target, steps, batch).detach())

    eps = 1e-6
    d_lr = (value(images, lr + eps) - value(images, lr - eps)) / (2 * eps)
    assert abs(d_lr - float(g_lr)) <= 1e-6 * max(1.0, abs(d_lr))
    g = torch.Generator().manual_seed(3)
    for _ in range(3):  # directional derivatives along random directions
        v = torch.randn(images.shape, generator=g, dtype=images.dtype)
        fd = (value(images + eps * v, lr) - value(images - eps * v, lr)) / (2 * eps)
        assert abs(fd - float((g_images * v).sum())) <= 1e-6 * max(1.0, abs(fd))


def saved_bytes(fn: object, *args: object) -> int:
    """Bytes of the tensors the graph of ``fn(*args)`` still holds for its backward once built (unique storages;
    tensors saved by graphs built and freed inside ``fn`` do not count)."""
    saved: list[weakref.ref[Tensor]] = []

    def pack(t: Tensor) -> Tensor:
        saved.append(weakref.ref(t))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn(*args)  # type: ignore[operator]
    gc.collect()
    alive = {}
    for ref in saved:
        t = ref()
        if t is not None:
            alive[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    del result
    return sum(alive.values())


def test_constant_memory_keeps_no_per_step_graph() -> None:
    net = create_network("convnet", 3, 4, (16, 16), generator=torch.Generator().manual_seed(0))
    student = FlatStudent(net)
    start = flat_parameters(net)
    target = start + 0.01
    images = torch.randn(16, 3, 16, 16, requires_grad=True)
    labels = torch.arange(16) % 4
    lr = torch.tensor(0.01, requires_grad=True)

    def batch(step: int, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, labels

    plain = {n: saved_bytes(unrolled_trajectory_loss, student, images, lr, start, target, n, batch) for n in (2, 8)}
    constant = {n: saved_bytes(constant_memory_trajectory_loss, student, images, lr, start, target, n, batch)
                for n in (2, 8)}
    snapshot = 4 * student.num_parameters
    assert plain[8] > 3 * plain[2]  # the plain unroll's graph grows with the steps
    assert constant[8] - constant[2] <= 6 * snapshot + 1024  # constant memory: only the theta_i snapshots grow
    assert constant[8] < plain[8] / 4


def test_flat_student_round_trip_and_logits() -> None:
    net = tiny_net()
    student = FlatStudent(net)
    flat = student.flatten()
    assert flat.shape == (sum(p.numel() for p in net.parameters()),) == (student.num_parameters,)
    parts = student.unflatten(flat)
    assert all(torch.equal(parts[name], p) for name, p in net.named_parameters())
    x = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    assert torch.allclose(student(flat, x), net(x), rtol=1e-12)
    assert not torch.allclose(student(flat + 0.1, x), net(x))  # the vector, not the module's own weights, is used
    with pytest.raises(ValueError, match=r"the student has \d+ parameters, got a vector of shape \(3,\)"):
        student.unflatten(torch.zeros(3))


def test_batchnorm_students_and_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot use BatchNorm"):
        FlatStudent(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)))
    student, images, lr, start, target, batch = problem(tiny_net())
    with pytest.raises(ValueError, match="steps \\(syn_steps\\) must be an integer >= 1, got 0"):
        unrolled_trajectory_loss(student, images, lr, start, target, 0, batch)
    with pytest.raises(ValueError, match="target must be the student's flat parameters"):
        constant_memory_trajectory_loss(student, images, lr, start, target[:-1], 2, batch)


def test_parameter_matching_loss_is_the_normalised_distance() -> None:
    start, target = torch.zeros(4), torch.tensor([1.0, 1.0, 1.0, 1.0])
    assert float(parameter_matching_loss(start, start, target)) == 1.0
    assert float(parameter_matching_loss(target, start, target)) == 0.0
    assert float(parameter_matching_loss(torch.full((4,), 0.5), start, target)) == 0.25
