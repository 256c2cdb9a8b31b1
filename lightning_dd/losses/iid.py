"""IID regularisers (VincenDen/IID, CVPR 2024): class centralization ``L_CC`` and local covariance matching ``L_CM``.

* ``L_CC`` pulls the proxy features of the synthetic images of each class towards their class mean (official
  features: the 512-d ``embed`` of a pretrained instance-norm ResNet18, after the same-seed DSA as the DM loss).
* ``L_CM`` matches, per class, the "local" covariance of the last ConvNet feature map of real and synthetic images,
  where every spatial position's channel vector is an observation with a position-specific mean.

The loss weights (``lambda_CC``, ``lambda_CM``) are applied by the caller. This module has no Lightning dependency.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from lightning_dd.losses.cmi import _check_labels, class_centroids

__all__ = [
    "ClassCentralizationLoss",
    "CovarianceMatchingLoss",
    "class_centralization",
    "covariance_matching",
    "local_covariance",
]

_FORMS = ("squared", "exp")


def class_centralization(
    features: Tensor,
    labels: Tensor,
    num_classes: int,
    form: Literal["squared", "exp"] = "squared",
    beta: float = 0.0,
    scale: float = 0.02,
    validate_args: bool = True,
) -> Tensor:
    """Class-centralization loss ``L_CC`` of IID.

    With ``mu_c = (1 / |S_c|) * sum_{i : y_i = c} g_i`` (NOT detached; gradients flow through the mean) and
    ``d_i = || g_i - mu_{y_i} ||_2^2``::

        "squared": L_CC = sum_i d_i                              (the shipped IID code; beta and scale unused)
        "exp":     L_CC = sum_i relu(exp(scale * d_i) - beta)

    Both are sums over samples and classes, with no ``1/n`` (as in the official code). The ``"exp"`` form is the
    original, exponential/hinge formulation that the official code keeps only as a comment
    (``d = exp(d * 0.02); if d < 0: d = 0``, with a note that beta = 0 and no ``exp`` gave the same result); the
    exact paper equation could not be verified offline, so treat ``"exp"`` as a reconstruction. Note that with
    ``beta = 0`` each ``"exp"`` term is ``>= 1`` (a class with one image contributes 1, not 0); use ``beta = 1``
    for a form that vanishes at ``d_i = 0``. Large ``scale * d_i`` overflows to ``inf``.

    Args:
        features: ``(N, D)`` proxy features ``g_i`` (higher-rank inputs are flattened to ``(N, -1)``).
        labels: integer ``(N,)`` in ``[0, num_classes)``; any order and class sizes.
        num_classes: total number of classes.
        form: ``"squared"`` (default, shipped code) or ``"exp"``.
        beta: hinge threshold of the ``"exp"`` form.
        scale: multiplier of ``d_i`` inside ``exp`` (official comment: 0.02).
        validate_args: check the label values (a host sync); the module form checks its first call only.

    Returns:
        Scalar tensor, differentiable with respect to ``features``.
    """
    if form not in _FORMS:
        raise ValueError(f"form must be one of {_FORMS}, got {form!r}")
    if features.dim() < 2:
        raise ValueError(f"features must be at least 2-D (N, D), got shape {tuple(features.shape)}")
    g = features.flatten(1)
    mu = class_centroids(g, labels, num_classes, validate_args=validate_args)
    d = (g - mu[labels.long()]).pow(2).sum(dim=1)  # (N,)
    if form == "squared":
        return d.sum()
    return torch.relu(torch.exp(scale * d) - beta).sum()


class ClassCentralizationLoss(nn.Module):
    """Module form of :func:`class_centralization`; ``forward(features, labels, num_classes)`` -> scalar."""

    def __init__(self, form: Literal["squared", "exp"] = "squared", beta: float = 0.0, scale: float = 0.02) -> None:
        super().__init__()
        if form not in _FORMS:
            raise ValueError(f"form must be one of {_FORMS}, got {form!r}")
        self.form: Literal["squared", "exp"] = form
        self.beta = float(beta)
        self.scale = float(scale)
        self._validated = False

    def forward(self, features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
        validate, self._validated = not self._validated, True  # label values checked on the first call only
        return class_centralization(features, labels, num_classes, form=self.form, beta=self.beta, scale=self.scale,
                                    validate_args=validate)

    def extra_repr(self) -> str:
        return f"form={self.form!r}, beta={self.beta}, scale={self.scale}"


def _as_bcp(maps: Tensor, name: str) -> Tensor:
    """``(B, C, H, W)`` or ``(B, C, P)`` -> ``(B, C, P)``."""
    if maps.dim() == 4:
        return maps.flatten(2)
    if maps.dim() == 3:
        return maps
    raise ValueError(f"{name} must be (B, C, H, W) or (B, C, P), got shape {tuple(maps.shape)}")


def _grouped_local_covariance(x: Tensor) -> Tensor:
    """``(K, B, C, P)`` -> ``(K, C, C)``: :func:`local_covariance` of each of the ``K`` groups."""
    d = x - x.mean(dim=1, keepdim=True)
    return torch.einsum("kbcp,kbdp->kcd", d, d) / x.shape[1]


def local_covariance(maps: Tensor) -> Tensor:
    """IID "local" covariance of a feature map.

    Args:
        maps: ``(B, C, H, W)`` or ``(B, C, P)``; spatial dimensions are flattened to ``P = H * W``.

    Returns:
        ``(C, C)``::

            mu_p = (1 / B) * sum_b x_bp                           # (C,) mean per channel AND per position p
            cov  = (1 / B) * sum_b sum_p (x_bp - mu_p)(x_bp - mu_p)^T

        i.e. the official ``D = L - L.mean(0, keepdim=True); (D @ D.transpose(1, 2)).mean(0)`` (normalised by
        ``1/B`` only: not ``1/(B P)``, not ``1/(B - 1)``). ``B = 1`` gives the zero matrix.
    """
    x = _as_bcp(maps, "maps")
    if x.shape[0] == 0:
        raise ValueError("maps must contain at least one sample")
    return _grouped_local_covariance(x.unsqueeze(0))[0]


def covariance_matching(
    real_maps: Tensor, syn_maps: Tensor, real_labels: Tensor, syn_labels: Tensor, num_classes: int,
    validate_args: bool = True,
) -> Tensor:
    """Local covariance matching loss ``L_CM`` of IID.

    ``L_CM = sum_{c in syn_labels} || local_cov(real_maps[real_labels == c].detach())
    - local_cov(syn_maps[syn_labels == c]) ||_F^2`` (sum over the classes present in ``syn_labels``; real classes
    without synthetic images are ignored). The real side is detached, so only ``syn_maps`` receives a gradient.

    Args:
        real_maps: ``(B_r, C, H, W)`` or ``(B_r, C, P)`` feature maps of real images.
        syn_maps: ``(B_s, C, H', W')`` or ``(B_s, C, P')`` feature maps of synthetic images (same ``C``).
        real_labels: integer ``(B_r,)``; every class of ``syn_labels`` must occur here.
        syn_labels: integer ``(B_s,)``.
        num_classes: total number of classes.
        validate_args: check the label values and that every synthetic class has real maps (host syncs); the
            module form checks its first call only.

    Returns:
        Scalar tensor. When every synthetic class has the same number of synthetic images and the same number of
        real images (e.g. class-sorted batches), all classes are computed in one batched ``einsum``; otherwise a
        Python loop over the classes is used. Both give the same value.
    """
    real = _as_bcp(real_maps, "real_maps").detach()
    syn = _as_bcp(syn_maps, "syn_maps")
    if real.shape[1] != syn.shape[1]:
        raise ValueError(f"real_maps and syn_maps must have the same channels, got {real.shape[1]} and {syn.shape[1]}")
    _check_labels(real_labels, real.shape[0], num_classes, "real_labels", validate_args)
    _check_labels(syn_labels, syn.shape[0], num_classes, "syn_labels", validate_args)
    if syn.shape[0] == 0:
        return syn.sum() * 0.0
    real_labels, syn_labels = real_labels.long(), syn_labels.long()

    classes, syn_counts = torch.unique(syn_labels, return_counts=True)  # sorted
    real_counts = torch.bincount(real_labels, minlength=num_classes)[classes]
    if validate_args and bool((real_counts == 0).any()):
        missing = classes[real_counts == 0].tolist()
        raise ValueError(f"classes {missing} have synthetic but no real feature maps")

    k = classes.shape[0]
    if bool((syn_counts == syn_counts[0]).all()) and bool((real_counts == real_counts[0]).all()):
        n_s, n_r = int(syn_counts[0]), int(real_counts[0])
        syn_order = torch.argsort(syn_labels, stable=True)
        keep = torch.isin(real_labels, classes).nonzero().squeeze(1)
        real_order = keep[torch.argsort(real_labels[keep], stable=True)]
        cov_s = _grouped_local_covariance(syn[syn_order].reshape(k, n_s, *syn.shape[1:]))
        cov_r = _grouped_local_covariance(real[real_order].reshape(k, n_r, *real.shape[1:]))
        return (cov_r - cov_s).pow(2).sum()

    return _covariance_matching_loop(real, syn, real_labels, syn_labels, classes.tolist())


def _covariance_matching_loop(
    real: Tensor, syn: Tensor, real_labels: Tensor, syn_labels: Tensor, classes: list[int]
) -> Tensor:
    """Fallback of :func:`covariance_matching` for any class counts: one class at a time (``real`` already detached)."""
    total = syn.new_zeros(())
    for c in classes:
        cov_r = local_covariance(real[real_labels == c])
        cov_s = local_covariance(syn[syn_labels == c])
        total = total + (cov_r - cov_s).pow(2).sum()
    return total


class CovarianceMatchingLoss(nn.Module):
    """Module form of :func:`covariance_matching`.

    ``forward(real_maps, syn_maps, real_labels, syn_labels, num_classes)`` -> scalar; maps are ``(B, C, H, W)`` or
    ``(B, C, P)`` (official: the un-pooled last ConvNet feature map, ``(B, 128, 16)`` for CIFAR). The label
    values are checked on the first call only (``validate_args`` of the functional form).
    """

    def __init__(self) -> None:
        super().__init__()
        self._validated = False

    def forward(
        self, real_maps: Tensor, syn_maps: Tensor, real_labels: Tensor, syn_labels: Tensor, num_classes: int
    ) -> Tensor:
        validate, self._validated = not self._validated, True
        return covariance_matching(real_maps, syn_maps, real_labels, syn_labels, num_classes, validate_args=validate)
