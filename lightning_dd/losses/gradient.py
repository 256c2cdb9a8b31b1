"""Gradient-matching distances (DC, DSA, IDC): how far the synthetic set's parameter gradients are from the real.

Three metrics, as the reference code defines them (``VICO-UoE/DatasetCondensation: utils.py match_loss``; IDC's
``snu-mllab/Efficient-Dataset-Condensation`` uses ``mse``):

* ``"ours"`` (the DC paper's layer-wise distance): for every parameter tensor, its gradient is viewed as rows --
  conv ``(out, in, h, w)`` -> ``(out, in*h*w)``, ``(c, h, w)`` -> ``(c, h*w)``, linear ``(out, in)`` as is -- and
  ``sum_rows (1 - <g_r, g_s> / (|g_r| |g_s| + eps))`` is added up over the parameters; 1-D parameters (biases,
  normalisation affine) contribute 0.
* ``"mse"``: ``sum (g_s - g_r)^2`` over all parameters flattened together.
* ``"cos"``: ``1 - <g_r, g_s> / (|g_r| |g_s| + eps)`` of all parameters flattened together.
* ``"l1"``: ``sum |g_s - g_r|`` (IDC's metric for MNIST / Fashion-MNIST).

:func:`class_gradient_distances` computes the per-class gradients of a network on real and synthetic images and
their distances, by the reference's loop over classes or batched over classes with ``torch.func.vmap``.

Pure torch; gradients flow into ``g_syn`` (computed with ``create_graph=True``) and not into ``g_real``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GRADIENT_METRICS",
    "MATCHED_PARAMETERS",
    "class_gradient_distances",
    "class_gradients",
    "gradient_distance",
    "gradient_distances",
    "layer_distance",
    "matched_parameters",
]

GradientMetric = Literal["ours", "mse", "cos", "l1"]
GRADIENT_METRICS: tuple[str, ...] = ("ours", "mse", "cos", "l1")
EPS = 1e-6


def _check_metric(metric: str) -> None:
    if metric not in GRADIENT_METRICS:
        raise ValueError(f"unknown gradient metric {metric!r}; allowed: {', '.join(GRADIENT_METRICS)}")


def layer_distance(g_real: Tensor, g_syn: Tensor, eps: float = EPS) -> Tensor:
    """The ``"ours"`` distance of one parameter's gradients (0 for a 1-D parameter); a scalar."""
    if g_real.shape != g_syn.shape:
        raise ValueError(f"gradient shapes differ: real {tuple(g_real.shape)}, synthetic {tuple(g_syn.shape)}")
    return _layer_distances(g_real[None], g_syn[None], eps)[0]


def _layer_distances(g_real: Tensor, g_syn: Tensor, eps: float) -> Tensor:
    """``"ours"`` of one parameter for ``K`` gradient pairs stacked on dim 0, ``(K, *shape)`` -> ``(K,)``."""
    if g_real.dim() <= 2:  # a 1-D parameter (bias, normalisation affine)
        return g_syn.new_zeros(g_syn.shape[0])
    r, s = g_real.flatten(2), g_syn.flatten(2)  # (K, rows, rest): dimension 0 of the parameter by the rest
    cosine = (r * s).sum(-1) / (r.norm(dim=-1) * s.norm(dim=-1) + eps)
    return (1 - cosine).sum(-1)


def gradient_distance(g_syn: Sequence[Tensor], g_real: Sequence[Tensor], metric: GradientMetric = "ours",
                      eps: float = EPS) -> Tensor:
    """The distance between two lists of parameter gradients (same order and shapes); a scalar.

    Args:
        g_syn: gradients of the loss on synthetic images (graph kept, so the distance is differentiable in them).
        g_real: gradients of the loss on real images (treated as constants by the caller: detach them).
        metric: ``"ours"``, ``"mse"``, ``"cos"`` or ``"l1"`` (module docstring).
        eps: the denominator's guard of the cosines.
    """
    return gradient_distances([g[None] for g in g_syn], [g[None] for g in g_real], metric, eps)[0]


def gradient_distances(g_syn: Sequence[Tensor], g_real: Sequence[Tensor], metric: GradientMetric = "ours",
                       eps: float = EPS) -> Tensor:
    """:func:`gradient_distance` of ``K`` gradient pairs at once: every tensor ``(K, *param_shape)``; ``(K,)``."""
    _check_metric(metric)
    if len(g_syn) != len(g_real) or not g_syn:
        raise ValueError(f"need as many synthetic as real gradients (>= 1), got {len(g_syn)} and {len(g_real)}")
    for r, s in zip(g_real, g_syn, strict=True):
        if r.shape != s.shape:
            raise ValueError(f"gradient shapes differ: real {tuple(r.shape[1:])}, synthetic {tuple(s.shape[1:])}")
    if metric == "ours":
        return torch.stack([_layer_distances(r, s, eps) for r, s in zip(g_real, g_syn, strict=True)]).sum(0)
    s = torch.cat([g.flatten(1) for g in g_syn], dim=1)
    r = torch.cat([g.flatten(1) for g in g_real], dim=1)
    if metric == "mse":
        return (s - r).square().sum(1)
    if metric == "l1":
        return (s - r).abs().sum(1)
    return 1 - (r * s).sum(1) / (r.norm(dim=1) * s.norm(dim=1) + eps)


def matched_parameters(net: nn.Module, which: str = "all") -> list[str]:
    """Names of the parameters whose gradients are matched.

    ``"all"``: every parameter (DC/DSA; 1-D ones count 0 in ``"ours"`` but do count in ``"mse"``/``"cos"``, as in
    the reference); ``"conv"``: the weights of the convolutions only, no bias, no normalisation, no classifier (IDC's
    ``bias=False, fc=False``: tensors of rank 1 and 2 skipped).
    """
    if which not in MATCHED_PARAMETERS:
        raise ValueError(f"matched parameters must be one of {MATCHED_PARAMETERS}, got {which!r}")
    named = [(n, p) for n, p in net.named_parameters()]
    return [n for n, p in named if which == "all" or p.dim() > 2]


MATCHED_PARAMETERS: tuple[str, ...] = ("all", "conv")


def class_gradients(net: nn.Module, images: Tensor, classes: Tensor, parameters: Sequence[str] | None = None, *,
                    create_graph: bool = False, batched: bool = False) -> list[Tensor]:
    """Per group ``i``, the gradient of ``CE(net(images[i]), classes[i])`` (mean over the group) w.r.t. parameters.

    Args:
        net: the classifier, ``(B, C, H, W) -> (B, K)``; BatchNorm layers must be in eval mode for ``batched``.
        images: ``(G, n, C, H, W)``, ``n`` images of class ``classes[i]`` in group ``i``.
        classes: int64 ``(G,)``.
        parameters: names of the parameters differentiated (:func:`matched_parameters`); ``None``: all.
        create_graph: keep the graph (second order: the result is differentiable in ``images``); otherwise the
            gradients are detached.
        batched: ``False`` (the reference: one forward/backward per group) or ``True`` (one ``torch.func.vmap``
            over ``grad`` for all groups); equal up to float rounding.

    Returns:
        One tensor ``(G, *param_shape)`` per parameter, in the order of ``parameters``.
    """
    if images.dim() != 5 or classes.shape != (images.shape[0],):
        raise ValueError(f"images (G, n, C, H, W) and classes (G,) must agree; got shapes {tuple(images.shape)} and "
                         f"{tuple(classes.shape)}")
    names = list(parameters) if parameters is not None else [n for n, _ in net.named_parameters()]
    if batched:
        return _batched_gradients(net, images, classes, names, create_graph)
    params = dict(net.named_parameters())
    wrt = [params[n] for n in names]
    groups = []
    for i in range(images.shape[0]):
        loss = F.cross_entropy(net(images[i]), classes[i].expand(images.shape[1]))
        grads = torch.autograd.grad(loss, wrt, create_graph=create_graph)
        groups.append(grads if create_graph else [g.detach() for g in grads])
    return [torch.stack(per_param) for per_param in zip(*groups, strict=True)]


def _batched_gradients(net: nn.Module, images: Tensor, classes: Tensor, names: list[str],
                       create_graph: bool) -> list[Tensor]:
    """:func:`class_gradients` with ``vmap`` over the groups (per-group gradients of one functional network)."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in net.modules()):
        raise ValueError("the batched per-class gradients need BatchNorm layers in eval mode (their batch statistics "
                         "would mix the classes); use batched=False or freeze the statistics first")
    state = {n: p.detach() for n, p in net.named_parameters()}
    state.update(dict(net.named_buffers()))
    wrt = {n: state.pop(n) for n in names}

    def loss(theta: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        logits = torch.func.functional_call(net, {**state, **theta}, (x,))
        return F.cross_entropy(logits, y.expand(x.shape[0]))

    per_group = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))
    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        grads = per_group(wrt, images, classes)
    return [grads[n] if create_graph else grads[n].detach() for n in names]


def class_gradient_distances(net: nn.Module, real: Tensor, syn: Tensor, classes: Tensor, *,
                             metric: GradientMetric = "ours", parameters: Sequence[str] | None = None,
                             batched: bool = False, eps: float = EPS) -> Tensor:
    """Per class, the distance between the cross-entropy gradients of ``net`` on real and on synthetic images.

    For class ``i``: ``g_r = d CE(net(real[i]), classes[i]) / d theta`` (a constant) and ``g_s`` the same on
    ``syn[i]`` with the graph kept (``create_graph``), so the result is differentiable in ``syn`` (second order).

    Args:
        net: the classifier, ``(B, C, H, W) -> (B, K)``; BatchNorm layers must be in eval mode for ``batched``.
        real: ``(G, k, C, H, W)`` real images of ``G`` classes (no gradient needed).
        syn: ``(G, n, C, H, W)`` synthetic images of the same classes (with gradient).
        classes: int64 ``(G,)``, the class of each group.
        metric: see :func:`gradient_distance`.
        parameters: names of the parameters whose gradients are compared (:func:`matched_parameters`); ``None``:
            all.
        batched: ``False`` (the reference's loop over classes) or ``True`` (all classes at once, ``torch.func.vmap``
            over ``grad``); equal up to float rounding.
        eps: the cosines' guard.

    Returns:
        ``(G,)`` distances, one per class.
    """
    if real.shape[0] != syn.shape[0]:
        raise ValueError(f"real and syn must hold the same classes, got {real.shape[0]} and {syn.shape[0]} groups")
    g_real = class_gradients(net, real, classes, parameters, batched=batched)
    g_syn = class_gradients(net, syn, classes, parameters, create_graph=True, batched=batched)
    return gradient_distances(g_syn, g_real, metric, eps)
