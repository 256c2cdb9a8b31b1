"""Conditional mutual information (CMI) regulariser of CMIDD (ndhg1213/CMIDD, ICLR 2025).

For a synthetic set ``S`` with labels ``y(s)`` and a frozen proxy network producing a vector ``f_s`` per image
(official choice: the 512-d penultimate feature ``embed`` of an instance-norm ResNet18, not the logits)::

    P_s  = softmax(f_s / T)                         # (D,) a point on the simplex
    Q^y  = (1 / |S_y|) * sum_{s in S_y} P_s          # class centroid in probability space, NOT detached
    KL_s = KL(P_s || Q^{y(s)}) = sum_k P_s[k] * (log P_s[k] - log Q^{y(s)}[k])

    "global":    CMI = (1 / |S|) * sum_y sum_{s in S_y} KL_s        (CMIDD DM / DC / DSA: batchmean over the set)
    "per_class": CMI = sum_y (1 / |S_y|) * sum_{s in S_y} KL_s      (CMIDD IDC: per-class batchmean, summed)

Gradients flow through both ``P_s`` and the centroid ``Q^y`` (as in the official code). Note: because ``Q^y`` is the
minimiser of ``sum_{s in S_y} KL(P_s || Q)``, the path through ``Q^y`` contributes a constant vector to ``dCMI/dP_s``
that the softmax Jacobian annihilates, so the gradient with respect to ``outputs`` equals the detached-centroid
gradient exactly. A class with a single image has ``Q^y = P_s`` and
contributes exactly 0 (so at IPC 1 the regulariser vanishes unless images are partitioned). This module has no
Lightning dependency.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CMILoss", "class_centroids", "conditional_mutual_information"]

_REDUCTIONS = ("global", "per_class")
_OUTPUTS = ("features", "logits")


def _check_labels(labels: Tensor, n: int, num_classes: int, name: str = "labels", validate_args: bool = True) -> None:
    """Validate ``labels``: integer, shape ``(n,)``, and (when ``validate_args``) values in ``[0, num_classes)``.

    The value check costs one host synchronisation; the dtype/shape checks are free and always run.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(labels.shape)}")
    if validate_args and n > 0:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name} must lie in [0, {num_classes}), got values in [{lo}, {hi}]")


def class_centroids(probs: Tensor, labels: Tensor, num_classes: int, validate_args: bool = True) -> Tensor:
    """Per-class mean of the rows of ``probs``.

    Args:
        probs: ``(N, D)``; in CMI the rows are points on the simplex, but any real rows are accepted.
        labels: integer ``(N,)`` with values in ``[0, num_classes)``.
        num_classes: number of rows of the result.
        validate_args: check the label values (a host sync); pass ``False`` once the inputs are known valid.

    Returns:
        ``(num_classes, D)`` with row ``c = (1 / |S_c|) * sum_{i : labels_i = c} probs_i``. Classes absent from
        ``labels`` get a zero row. The result is differentiable with respect to ``probs`` (nothing is detached);
        computed with one ``index_add`` (no Python loop over classes).
    """
    if probs.dim() != 2:
        raise ValueError(f"probs must be 2-D (N, D), got shape {tuple(probs.shape)}")
    _check_labels(labels, probs.shape[0], num_classes, validate_args=validate_args)
    labels = labels.long()
    sums = probs.new_zeros(num_classes, probs.shape[1]).index_add(0, labels, probs)
    counts = torch.bincount(labels, minlength=num_classes).clamp_min(1).to(probs.dtype)
    return sums / counts[:, None]


def conditional_mutual_information(
    outputs: Tensor,
    labels: Tensor,
    num_classes: int,
    temperature: float = 1.0,
    reduction: Literal["global", "per_class"] = "global",
    validate_args: bool = True,
) -> Tensor:
    """CMI of the synthetic set given its labels (see the module docstring for the formula).

    Args:
        outputs: ``(N, D)`` proxy outputs ``f_s`` (features or logits) of the ``N`` synthetic images.
        labels: integer ``(N,)`` class of each image, values in ``[0, num_classes)``; any order, any class sizes.
        num_classes: total number of classes (used for validation; classes absent from ``labels`` are ignored).
        temperature: ``T > 0``; ``P_s = softmax(outputs_s / T)``. The official code uses ``T = 1``.
        reduction: ``"global"`` divides the sum of the ``N`` per-sample KLs by ``N``; ``"per_class"`` divides each
            class's sum by its own size and sums over the classes present.
        validate_args: check the label values (one host sync, torchmetrics style); ``CMILoss`` checks its first
            call only.

    Returns:
        Scalar tensor ``>= 0``, differentiable with respect to ``outputs``.

    Numerics: ``log P`` comes from ``log_softmax``; ``log Q^y`` is a per-class log-mean-exp of ``log P``,
    ``log Q^y = m + log(mean_{s in S_y} exp(log P_s - m))`` with ``m`` the per-class, per-dimension max (detached;
    the expression is exactly invariant to ``m``). When all ``P_s`` of a class are identical (in particular a class
    with one image) every ``exp`` is exactly 1, so ``log Q^y == log P_s`` bit for bit and the class contributes
    exactly 0. Mathematically every ``KL_s >= 0``; the final scalar is clamped at 0 so rounding on nearly identical
    distributions can never yield a tiny negative value (the clamp is inactive, gradient unchanged, whenever the
    computed value is >= 0).
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if outputs.dim() != 2:
        raise ValueError(f"outputs must be 2-D (N, D), got shape {tuple(outputs.shape)}")
    n, d = outputs.shape
    if n == 0:
        raise ValueError("outputs must contain at least one sample")
    _check_labels(labels, n, num_classes, validate_args=validate_args)

    # Work over the classes actually present (index 0..K-1), so no empty group ever produces log(0).
    _, group, counts = torch.unique(labels.long(), return_inverse=True, return_counts=True)
    k = counts.shape[0]
    index = group[:, None].expand(n, d)

    log_p = F.log_softmax(outputs / temperature, dim=1)  # (N, D)
    m = torch.full((k, d), float("-inf"), dtype=log_p.dtype, device=log_p.device)
    m = m.scatter_reduce(0, index, log_p.detach(), reduce="amax", include_self=True)  # (K, D), finite
    shifted = torch.exp(log_p - m[group])  # (N, D), in (0, 1]
    mean = log_p.new_zeros(k, d).index_add(0, group, shifted) / counts.to(log_p.dtype)[:, None]
    log_q = m + torch.log(mean)  # (K, D)

    kl = (log_p.exp() * (log_p - log_q[group])).sum(dim=1)  # (N,) KL(P_s || Q^{y(s)})
    # global: (1/N) sum_s KL_s;  per_class: sum_s KL_s / |S_{y(s)}| = sum_y (1/|S_y|) sum_{s in S_y} KL_s
    cmi = kl.sum() / n if reduction == "global" else (kl / counts.to(kl.dtype)[group]).sum()
    return cmi.clamp_min(0.0)


class CMILoss(nn.Module):
    """CMI of synthetic images under a frozen proxy network: ``CMI(proxy-output(images), labels)``.

    Args:
        output: ``"features"`` uses ``proxy.embed(images)`` (penultimate features; the official CMIDD choice,
            512-d for the instance-norm ResNet18 on 32x32 inputs); ``"logits"`` uses ``proxy(images)``.
        temperature: softmax temperature ``T`` (official: 1).
        reduction: ``"global"`` (CMIDD DM/DC/DSA) or ``"per_class"`` (CMIDD IDC); see
            :func:`conditional_mutual_information`.

    ``forward(images, labels, proxy, num_classes)``: ``images`` ``(N, C, H, W)``, ``labels`` integer ``(N,)``;
    returns a scalar. The caller freezes ``proxy`` (``requires_grad_(False)``); gradients flow to ``images``.
    The loss weight ``lambda`` is applied by the caller.

    ``images`` must already be in the proxy's input normalisation. (The official IDC integration feeds raw [0, 1]
    decoded pixels to a ResNet pretrained on normalised images; that is a bug we do not copy - the caller converts.)
    """

    def __init__(
        self,
        output: Literal["features", "logits"] = "features",
        temperature: float = 1.0,
        reduction: Literal["global", "per_class"] = "global",
    ) -> None:
        super().__init__()
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, got {output!r}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.output = output
        self.temperature = float(temperature)
        self.reduction: Literal["global", "per_class"] = reduction
        self._validated = False

    def forward(self, images: Tensor, labels: Tensor, proxy: nn.Module, num_classes: int) -> Tensor:
        if self.output == "features":
            embed = getattr(proxy, "embed", None)
            if not callable(embed):
                raise TypeError(f"output='features' needs a proxy with an embed() method, got {type(proxy).__name__}")
            outputs = embed(images)
        else:
            outputs = proxy(images)
        outputs = outputs.flatten(1)  # (N, D); a no-op for the usual (N, D) embeddings / logits
        validate, self._validated = not self._validated, True  # the labels of a run do not change: check once
        return conditional_mutual_information(
            outputs, labels, num_classes, temperature=self.temperature, reduction=self.reduction,
            validate_args=validate,
        )

    def extra_repr(self) -> str:
        return f"output={self.output!r}, temperature={self.temperature}, reduction={self.reduction!r}"
