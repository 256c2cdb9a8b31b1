"""Trajectory matching (MTT): the plain unroll against a hand computation and finite differences, and the
constant-memory recomputation against the plain unroll (values, image and step-size gradients, memory)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable

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
    """A student, synthetic images (float64, with gradient), a step size, start/target parameters and a step batch
    that draws overlapping minibatches (images reused across steps, some unused at a step) through a differentiable
    augmentation whose parameters depend on the step (fixed before the unroll, as MTT's step plan)."""
    g = torch.Generator().manual_seed(1)
    student = FlatStudent(net)
    start = flat_parameters(net)
    target = start + 0.05 * torch.randn(start.shape, generator=g, dtype=start.dtype)
    images = torch.randn(n, *shape, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.arange(n) % classes
    lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    chunks = [torch.randperm(n, generator=g)[: n // 2 + 1] for _ in range(4)]
    gains = [1.0 + 0.1 * i for i in range(4)]
    shifts = [int(s) for s in torch.randint(-1, 2, (4,), generator=g)]

    def batch(step: int, x: Tensor) -> tuple[Tensor, Tensor]:
        idx = chunks[step % 4]
        return torch.roll(torch.tanh(x[idx]) * gains[step % 4], shifts[step % 4], dims=-1), labels[idx]

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
    assert 0 < float(plain[0]) != 1.0  # the unroll moved the student (a loss of 1 is "no step at all")


def test_the_steps_matter_to_the_gradients() -> None:
    """The adjoint through later steps is kept: 7 steps differ from 1 step, and from a first-order approximation
    that drops the Hessian-vector products (TESLA's constant adjoint) -- so the equality above is not vacuous."""
    args = problem(tiny_net())
    one, seven = gradients("plain", 1, *args), gradients("plain", 7, *args)
    assert rel(seven[1], one[1]) > 1e-2
    student, images, lr, start, target, batch = args
    # first order: theta_N = theta_0 - lr * sum_i g_i(theta_i) with the theta_i detached inside g_i's argument
    theta = start.clone()
    total = torch.zeros_like(start)
    for i in range(7):
        leaf = theta.detach().requires_grad_(True)
        g = student.step_gradient(leaf, *batch(i, images), create_graph=True)
        total = total + g
        theta = theta - lr.detach() * g.detach()
    first_order = parameter_matching_loss(start - lr * total, start, target)
    g_first = torch.autograd.grad(first_order, images)[0]
    assert rel(g_first, seven[1]) > 1e-3


def test_constant_memory_equals_the_plain_unroll_on_a_convnet() -> None:
    net = create_network("convnet", 3, 4, (8, 8), generator=torch.Generator().manual_seed(0), width=16).double()
    args = problem(net, n=8, shape=(3, 8, 8), classes=4)
    plain = gradients("plain", 5, *args)
    constant = gradients("constant_memory", 5, *args)
    assert abs(float(plain[0] - constant[0])) <= 1e-12 * abs(float(plain[0]))
    assert rel(constant[1], plain[1]) <= 1e-5 and rel(constant[2], plain[2]) <= 1e-5
    assert plain[1].abs().sum() > 0 and plain[2].abs() > 0


def test_constant_memory_backward_composes_with_the_rest_of_the_graph() -> None:
    """An upstream op (the synthetic set's decode) and a scaled / summed loss downstream: ``.backward()`` leaves the
    same gradients in the leaves as the plain unroll (the incoming gradient is honoured, not assumed 1)."""
    student, images, lr, start, target, batch = problem(tiny_net())
    grads = {}
    for name, fn in LOSSES.items():
        base = images.detach().clone().requires_grad_(True)
        alpha = lr.detach().clone().requires_grad_(True)
        decoded = base * 1.5 - 0.25  # a non-leaf input
        loss = fn(student, decoded, alpha, start, target, 4, batch)
        (2.5 * loss + 0.1 * decoded.pow(2).sum()).backward()
        grads[name] = (base.grad, alpha.grad)
    assert rel(grads["constant_memory"][0], grads["plain"][0]) <= 1e-5
    assert rel(grads["constant_memory"][1], grads["plain"][1]) <= 1e-5


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
    got = torch.autograd.grad(loss, (images, lr))
    want = torch.autograd.grad(expected, (images, lr))
    assert torch.allclose(got[0], want[0], rtol=1e-9, atol=1e-15) and torch.allclose(got[1], want[1], rtol=1e-9)
    assert want[0].abs().sum() > 0


@pytest.mark.parametrize("name", list(LOSSES))
def test_image_and_lr_gradients_match_finite_differences(name: str) -> None:
    student, images, lr, start, target, batch = problem(tiny_net())
    steps = 3
    _, g_images, g_lr = gradients(name, steps, student, images, lr, start, target, batch)

    def value(x: Tensor, alpha: Tensor) -> float:
        return float(unrolled_trajectory_loss(student, x, alpha, start, target, steps, batch).detach())

    eps = 1e-6
    d_lr = (value(images, lr + eps) - value(images, lr - eps)) / (2 * eps)
    assert abs(d_lr) > 1e-3  # a derivative that can be wrong
    assert abs(d_lr - float(g_lr)) <= 1e-6 * max(1.0, abs(d_lr))
    g = torch.Generator().manual_seed(3)
    for _ in range(3):  # directional derivatives along random directions
        v = torch.randn(images.shape, generator=g, dtype=images.dtype)
        fd = (value(images + eps * v, lr) - value(images - eps * v, lr)) / (2 * eps)
        assert abs(fd) > 1e-4
        assert abs(fd - float((g_images * v).sum())) <= 1e-6 * max(1.0, abs(fd))


def saved_bytes(fn: Callable[..., Tensor], *args: object) -> int:
    """Bytes of the tensors the graph of ``fn(*args)`` still holds for its backward once built (unique storages;
    tensors saved by graphs built and freed inside ``fn`` do not count)."""
    saved: list[weakref.ref[Tensor]] = []

    def pack(t: Tensor) -> Tensor:
        saved.append(weakref.ref(t))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn(*args)
    gc.collect()
    alive = {}
    for ref in saved:
        t = ref()
        if t is not None:
            alive[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    assert result.requires_grad  # the graph is alive while measured
    del result
    return sum(alive.values())


def test_constant_memory_keeps_no_per_step_graph() -> None:
    net = create_network("convnet", 3, 4, (16, 16), generator=torch.Generator().manual_seed(0), width=16)
    student = FlatStudent(net)
    start = flat_parameters(net)
    target = start + 0.01
    images = torch.randn(16, 3, 16, 16, requires_grad=True)
    labels = torch.arange(16) % 4
    lr = torch.tensor(0.01, requires_grad=True)

    def batch(step: int, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, labels

    args = (student, images, lr, start, target)
    plain = {n: saved_bytes(unrolled_trajectory_loss, *args, n, batch) for n in (2, 8)}
    constant = {n: saved_bytes(constant_memory_trajectory_loss, *args, n, batch) for n in (2, 8)}
    snapshot = 4 * student.num_parameters  # one float32 theta_i
    assert plain[8] - plain[2] > 6 * 10 * snapshot  # the plain unroll's graph grows by far more than theta per step
    assert constant[8] - constant[2] <= 6 * snapshot + 4096  # constant memory: only the theta_i snapshots grow
    assert constant[8] < plain[8] / 4
    assert constant[2] >= images.numel() * 4  # the measurement sees what the Function saved (images at least)


def test_flat_student_round_trip_and_logits() -> None:
    net = tiny_net()
    student = FlatStudent(net)
    flat = student.flatten()
    assert flat.shape == (sum(p.numel() for p in net.parameters()),) == (student.num_parameters,)
    assert torch.equal(flat, flat_parameters(net)) and not flat.requires_grad
    parts = student.unflatten(flat)
    assert list(parts) == [name for name, _ in net.named_parameters()]
    assert all(torch.equal(parts[name], p) and parts[name].shape == p.shape for name, p in net.named_parameters())
    assert torch.equal(torch.cat([v.reshape(-1) for v in parts.values()]), flat)  # flatten(unflatten(v)) == v
    x = torch.randn(5, 2, 4, 4, dtype=torch.float64)
    assert torch.allclose(student(flat, x), net(x), rtol=1e-12)
    assert not torch.allclose(student(flat + 0.1, x), net(x))  # the vector, not the module's own weights, is used
    # unflatten gives views: gradients reach the flat vector, in named_parameters() order
    leaf = flat.clone().requires_grad_(True)
    student(leaf, x).sum().backward()
    net.zero_grad()
    net(x).sum().backward()
    assert torch.allclose(leaf.grad, torch.cat([p.grad.reshape(-1) for p in net.parameters()]), rtol=1e-12)
    other = tiny_net()
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    assert not torch.equal(student.flatten(other), flat)  # flatten(net) reads the given module
    with pytest.raises(ValueError, match=rf"the student has {student.num_parameters} parameters, got a vector of "
                                         r"shape \(3,\)"):
        student.unflatten(torch.zeros(3))
    with pytest.raises(ValueError, match=r"got a vector of shape \(1, \d+\)"):
        student.unflatten(flat[None])


def test_batchnorm_students_and_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"cannot use BatchNorm.*'convnet'"):
        FlatStudent(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)))
    with pytest.raises(ValueError, match="cannot use BatchNorm"):
        FlatStudent(create_network("convnet_bn", 1, 2, (8, 8)))
    student, images, lr, start, target, batch = problem(tiny_net())
    for fn in LOSSES.values():
        with pytest.raises(ValueError, match="steps \\(syn_steps\\) must be an integer >= 1, got 0"):
            fn(student, images, lr, start, target, 0, batch)
        with pytest.raises(ValueError, match="target must be the student's flat parameters"):
            fn(student, images, lr, start, target[:-1], 2, batch)
        with pytest.raises(ValueError, match="lr must be a scalar tensor, got shape \\(2,\\)"):
            fn(student, images, lr.expand(2), start, target, 2, batch)


def test_parameter_matching_loss_is_the_normalised_distance() -> None:
    start, target = torch.zeros(4), torch.tensor([1.0, 1.0, 1.0, 1.0])
    assert float(parameter_matching_loss(start, start, target)) == 1.0
    assert float(parameter_matching_loss(target, start, target)) == 0.0
    assert float(parameter_matching_loss(torch.full((4,), 0.5), start, target)) == 0.25
    assert float(parameter_matching_loss(torch.tensor([2.0, 1.0, 1.0, 1.0]), start, target)) == 0.25
