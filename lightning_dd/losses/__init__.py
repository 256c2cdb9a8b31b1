"""Regularisation losses as plain ``nn.Module``s / functions (no Lightning): CMI (CMIDD) and IID (L_CC, L_CM)."""

from lightning_dd.losses.cmi import CMILoss, class_centroids, conditional_mutual_information
from lightning_dd.losses.iid import (
    ClassCentralizationLoss,
    CovarianceMatchingLoss,
    class_centralization,
    covariance_matching,
    local_covariance,
)

__all__ = [
    "CMILoss",
    "ClassCentralizationLoss",
    "CovarianceMatchingLoss",
    "class_centralization",
    "class_centroids",
    "conditional_mutual_information",
    "covariance_matching",
    "local_covariance",
]
