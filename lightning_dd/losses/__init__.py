"""Losses as plain ``nn.Module``s / functions (no Lightning): matching distances (DM; gradient matching for DC, DSA,
IDC) and the regularisation
losses CMI (CMIDD) and IID (L_CC, L_CM)."""

from lightning_dd.losses.cmi import CMILoss, class_centroids, conditional_mutual_information
from lightning_dd.losses.distribution import MatchedEmbeddings, class_chunks, distribution_matching
from lightning_dd.losses.gradient import GRADIENT_METRICS, gradient_distance, layer_distance
from lightning_dd.losses.iid import (
    ClassCentralizationLoss,
    CovarianceMatchingLoss,
    class_centralization,
    covariance_matching,
    local_covariance,
)

__all__ = [
    "GRADIENT_METRICS",
    "CMILoss",
    "ClassCentralizationLoss",
    "CovarianceMatchingLoss",
    "MatchedEmbeddings",
    "class_centralization",
    "class_centroids",
    "class_chunks",
    "conditional_mutual_information",
    "covariance_matching",
    "distribution_matching",
    "gradient_distance",
    "layer_distance",
    "local_covariance",
]
