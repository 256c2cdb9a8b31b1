"""Gradient-matching distances (DC, DSA, IDC): how far the synthetic set's parameter gradients are from the real.

Three metrics, as the reference code defines them (``VICO-UoE/DatasetCondensation: utils.py match_loss``; IDC's
``snu-mllab/Efficient-Dataset-Condensation`` uses ``mse``):

* ``"ours"`` (the DC paper's layer-wise distance): for every parameter tensor, its gradient is viewed as rows --
  conv ``(out, in, h, w)`` -> ``(out, in*h*w)``, ``(c, h, w)`` -> ``(c, h*w)``, linear ``(out, in)`` as is -- and
  ``sum_rows (1 - <g_r, g_s> / (|g_r| |g_s| + eps))`` is added up over the parameters; 1-D parameters (biases,
  normalisation affine) contribute 0.
* ``"mse"``: ``sum (g_s - g_r)^2`` over all parameters flattened together.
* ``"cos"``: ``1 - <g_r, g_s> / (|g_r| |g_s| + eps)`` of all parameters flattened together.

Pure torch; gradients flow into ``g_syn`` (computed with ``create_graph=True``) and not into ``g_real``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

__all__ = ["GRADIENT_METRICS", "gradient_distance", "layer_distance"]

GradientMetric = Literal["ours", "mse", "cos"]
GRADIENT_METRICS: tuple[str, ...] = ("ours", "mse", "cos")
EPS = 1e-6


def _rows(g: Tensor) -> Tensor:
    """A parameter gradient as the rows the layer-wise distance compares: dimension 0 by the rest."""
    return g.reshape(g.shape[0], -1) if g.dim() > 2 else g


def layer_distance(g_real: Tensor, g_syn: Tensor, eps: float = EPS) -> Tensor:
    """The ``"ours"`` distance of one parameter's gradients (0 for a 1-D parameter); a scalar."""
    if g_real.shape != g_syn.shape:
        raise ValueError(f"gradient shapes differ: real {tuple(g_real.shape)}, synthetic {tuple(g_syn.shape)}")
    if g_real.dim() <= 1:
        return g_syn.new_zeros(())
    r, s = _rows(g_real), _rows(g_syn)
    cosine = (r * s).sum(-1) / (r.norm(dim=-1) * s.norm(dim=-1) + eps)
    return (1 - cosine).sum()


def gradient_distance(g_syn: Sequence[Tensor], g_real: Sequence[Tensor], metric: GradientMetric = "ours",
                      eps: float = EPS) -> Tensor:
    """The distance between two lists of parameter gradients (same order and shapes); a scalar.

    Args:
        g_syn: gradients of the loss on synthetic images (graph kept, so the distance is differentiable in them).
        g_real: gradients of the loss on real images (treated as constants by the caller: detach them).
        metric: ``"ours"``, ``"mse"`` or ``"cos"`` (module docstring).
        eps: the denominator's guard of the cosines.
    """
    if metric not in GRADIENT_METRICS:
        raise ValueError(f"unknown gradient metric {metric!r}; allowed: {', '.join(GRADIENT_METRICS)}")
    if len(g_syn) != len(g_real) or not g_syn:
        raise ValueError(f"need as many synthetic as real gradients (>= 1), got {len(g_syn)} and {len(g_real)}")
    if metric == "ours":
        return torch.stack([layer_distance(r, s, eps) for r, s in zip(g_real, g_syn, strict=True)]).sum()
    s = torch.cat([g.reshape(-1) for g in g_syn])
    r = torch.cat([g.reshape(-1) for g in g_real])
    if s.shape != r.shape:
        raise ValueError(f"gradient sizes differ: real {r.numel()}, synthetic {s.numel()}")
    if metric == "mse":
        return (s - r).square().sum()
    return 1 - (r * s).sum() / (r.norm() * s.norm() + eps)
