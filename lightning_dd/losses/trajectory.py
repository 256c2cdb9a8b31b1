"""Trajectory matching (MTT; Cazenavette et al., CVPR 2022): a functional student unrolled on the synthetic set.

The loss of one MTT iteration (``GeorgeCazenavette/mtt-distillation: distill.py``), with ``theta_0`` an expert's
parameters at a start epoch and ``theta*`` the same expert ``expert_epochs`` later::

    theta_{i+1} = theta_i - alpha * grad_theta CE(f(x_i; theta_i), y_i)          i = 0 .. N-1 (N = syn_steps)
    loss        = ||theta_N - theta*||^2 / ||theta_0 - theta*||^2

where ``(x_i, y_i)`` is step ``i``'s minibatch of (augmented) synthetic images and ``alpha`` the learnable step size.
The loss is differentiated w.r.t. the synthetic images and ``alpha`` (second order through every step).

Two ways to get those gradients, equal up to float rounding (tested in float64):

* :func:`unrolled_trajectory_loss` -- the reference: every step's graph (``create_graph=True``) is kept until the
  backward pass; memory grows linearly with ``N`` (about 3 MiB per synthetic image per step for ConvNet-3 at 32x32).
* :func:`constant_memory_trajectory_loss` -- exact reverse-mode differentiation by recomputation. The forward pass
  keeps only the ``N`` parameter vectors ``theta_i`` (``P`` floats each: 1.2 MiB for ConvNet-3 on CIFAR-10); the
  backward pass walks the steps in reverse with the adjoint ``lam = dloss/dtheta_{i+1}``, recomputes step ``i``'s
  gradient ``g_i`` at ``theta_i`` with its graph, and takes one vector-Jacobian product of ``g_i``::

      dloss/dalpha += -<g_i, lam>
      dloss/dx     += -alpha * (d g_i / d x)^T lam
      lam          <- lam - alpha * (d g_i / d theta_i)^T lam      (a Hessian-vector product)

  Nothing is dropped: TESLA (Cui et al., ICML 2023, ``justincui03/tesla``) keeps only the direct ``d g_i / d x``
  term (its ``lam`` is constant, so the Hessian-vector products and the path through later steps are lost); this
  keeps them, at the cost of one extra forward + backward per step (the first pass) over the plain unroll. Memory is
  one step's double-backward graph plus the ``theta_i``: flat in ``N`` up to ``P`` floats per step.

Pure torch, no Lightning. Step minibatches come from a :data:`StepBatch` callable that must return the same batch
every time it is called for the same step (the constant-memory path calls it twice): draw indices and augmentation
parameters before the unroll.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["FlatStudent", "StepBatch", "constant_memory_trajectory_loss", "flat_parameters", "parameter_matching_loss",
           "unrolled_trajectory_loss"]

#: ``(step, images) -> (x_step (B, C, H, W), y_step (B,))``: step ``step``'s minibatch built from ``images`` (the whole
#: synthetic set, with gradient), differentiable w.r.t. ``images`` and deterministic in ``step``
StepBatch = Callable[[int, Tensor], tuple[Tensor, Tensor]]


class FlatStudent:
    """A network evaluated on one flat parameter vector (``torch.func.functional_call``), as MTT's student.

    The flat order is ``net.named_parameters()``'s, each tensor flattened (the layout of MTT's ``ReparamModule`` and
    of :func:`flat_parameters`). Buffers are the module's own and must not change in a forward pass: networks with
    BatchNorm are refused (their running statistics are not part of a trajectory).

    Args:
        net: the architecture (its own parameter values are not used by :meth:`__call__`).
    """

    def __init__(self, net: nn.Module) -> None:
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
            raise ValueError(f"a functional (flat-parameter) student cannot use BatchNorm ({type(net).__name__} has "
                             "BatchNorm layers, whose running statistics are not part of the trajectory); use an "
                             "instance-norm network such as 'convnet'")
        self.net = net
        named = list(net.named_parameters())
        self.names = [name for name, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.num_parameters = sum(self.numels)

    def flatten(self, net: nn.Module | None = None) -> Tensor:
        """The flat ``(P,)`` parameter vector of ``net`` (default: the student's own module), detached copy."""
        return flat_parameters(self.net if net is None else net)

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """``(P,)`` -> ``{name: view}`` (views of ``flat``: gradients flow to it)."""
        if flat.dim() != 1 or flat.numel() != self.num_parameters:
            raise ValueError(f"the student has {self.num_parameters} parameters, got a vector of shape "
                             f"{tuple(flat.shape)}")
        parts = torch.split(flat, self.numels)
        return {name: part.view(shape) for name, part, shape in zip(self.names, parts, self.shapes, strict=True)}

    def __call__(self, flat: Tensor, x: Tensor) -> Tensor:
        """Logits ``(B, K)`` of ``x`` ``(B, C, H, W)`` under parameters ``flat`` ``(P,)``."""
        return functional_call(self.net, self.unflatten(flat), (x,))

    def step_gradient(self, flat: Tensor, x: Tensor, y: Tensor, create_graph: bool) -> Tensor:
        """``grad_flat CE(f(x; flat), y)``, ``(P,)``; ``flat`` must require grad."""
        loss = F.cross_entropy(self(flat, x), y)
        (grad,) = torch.autograd.grad(loss, flat, create_graph=create_graph)
        return grad


def flat_parameters(net: nn.Module) -> Tensor:
    """``torch.cat`` of ``net``'s parameters flattened, in ``named_parameters()`` order: ``(P,)``, detached copy."""
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()]).clone()


def parameter_matching_loss(end: Tensor, start: Tensor, target: Tensor) -> Tensor:
    """``||end - target||^2 / ||start - target||^2`` (the reference divides both sums by ``P``, which cancels).

    Args:
        end, start, target: ``(P,)`` flat parameters; gradients flow through ``end`` only's graph as given.
    """
    return (end - target).pow(2).sum() / (start - target).pow(2).sum()


def _check(start: Tensor, target: Tensor, lr: Tensor, steps: int, student: FlatStudent) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps (syn_steps) must be an integer >= 1, got {steps!r}")
    for name, t in (("start", start), ("target", target)):
        if t.dim() != 1 or t.numel() != student.num_parameters:
            raise ValueError(f"{name} must be the student's flat parameters ({student.num_parameters},), got shape "
                             f"{tuple(t.shape)}")
    if lr.numel() != 1:
        raise ValueError(f"lr must be a scalar tensor, got shape {tuple(lr.shape)}")


def unrolled_trajectory_loss(student: FlatStudent, images: Tensor, lr: Tensor, start: Tensor, target: Tensor,
                             steps: int, batch: StepBatch) -> Tensor:
    """The reference unroll: every step's graph kept (``create_graph=True``), memory linear in ``steps``.

    Args:
        student: the functional student.
        images: the synthetic set ``(M, C, H, W)`` with gradient (``batch`` selects and augments from it).
        lr: the learnable step size, a scalar tensor with gradient.
        start, target: ``(P,)`` expert parameters at the start epoch and ``expert_epochs`` later (constants).
        steps: ``N`` unrolled student updates.
        batch: step ``i``'s minibatch from ``images`` (:data:`StepBatch`).

    Returns:
        The scalar :func:`parameter_matching_loss` of ``theta_N``, differentiable w.r.t. ``images`` and ``lr``.
    """
    _check(start, target, lr, steps, student)
    start, target = start.detach(), target.detach()
    theta = start.clone().requires_grad_(True)
    for i in range(steps):
        x, y = batch(i, images)
        theta = theta - lr * student.step_gradient(theta, x, y, create_graph=True)
    return parameter_matching_loss(theta, start, target)


class _ConstantMemoryUnroll(torch.autograd.Function):
    """Forward: the unroll without graphs (keeps ``theta_i``); backward: the exact adjoint walk (module docstring)."""

    @staticmethod
    def forward(ctx: Any, images: Tensor, lr: Tensor, student: FlatStudent, start: Tensor, target: Tensor,
                steps: int, batch: StepBatch) -> Tensor:
        device_type = images.device.type
        ctx.autocast = (device_type, torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        alpha = lr.detach()
        x_all = images.detach()
        thetas = []
        theta = start.detach()
        for i in range(steps):
            thetas.append(theta)
            with torch.enable_grad():
                leaf = theta.detach().requires_grad_(True)  # an alias, not a copy: theta itself is kept as is
                x, y = batch(i, x_all)
                grad = student.step_gradient(leaf, x, y, create_graph=False)
            theta = theta - alpha * grad
        loss = parameter_matching_loss(theta, start.detach(), target.detach())
        ctx.student, ctx.batch, ctx.steps = student, batch, steps
        ctx.save_for_backward(images.detach(), alpha, start.detach(), target.detach(), theta, *thetas)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        images, alpha, start, target, theta_n, *thetas = ctx.saved_tensors
        student: FlatStudent = ctx.student
        batch: StepBatch = ctx.batch
        device_type, enabled, dtype = ctx.autocast
        denominator = (start - target).pow(2).sum()
        lam = grad_loss * 2 * (theta_n - target) / denominator  # dloss/dtheta_N
        grad_images = torch.zeros_like(images)
        grad_lr = torch.zeros_like(alpha)
        x_leaf = images.detach().requires_grad_(True)  # one leaf for every step: autograd.grad does not accumulate
        for i in reversed(range(ctx.steps)):
            with torch.enable_grad(), torch.autocast(device_type, dtype=dtype, enabled=enabled):
                leaf = thetas[i].detach().requires_grad_(True)
                x, y = batch(i, x_leaf)
                grad = student.step_gradient(leaf, x, y, create_graph=True)
                grad_lr = grad_lr - (grad.detach() * lam).sum()
                d_theta, d_images = torch.autograd.grad(grad, (leaf, x_leaf), grad_outputs=lam, allow_unused=True)
            if d_images is not None:
                grad_images = grad_images - alpha * d_images
            lam = lam - alpha * d_theta
        return grad_images, grad_lr.reshape(alpha.shape), None, None, None, None, None


def constant_memory_trajectory_loss(student: FlatStudent, images: Tensor, lr: Tensor, start: Tensor, target: Tensor,
                                    steps: int, batch: StepBatch) -> Tensor:
    """:func:`unrolled_trajectory_loss`'s loss with memory flat in ``steps`` and the same (exact) gradients.

    Same arguments. ``batch`` is called twice per step (forward and backward pass) and must return the same batch
    both times. The backward pass re-enters the autocast state of the forward pass. Returns the scalar loss,
    differentiable w.r.t. ``images`` and ``lr`` (through a custom ``autograd.Function``).
    """
    _check(start, target, lr, steps, student)
    loss: Tensor = _ConstantMemoryUnroll.apply(images, lr, student, start, target, steps, batch)
    return loss
