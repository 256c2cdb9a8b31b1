"""Losses as plain ``nn.Module``s / functions (no Lightning): matching distances (DM; gradient matching for DC, DSA,
IDC) and the regularisation
losses CMI (CMIDD) and IID (L_CC, L_CM)."""

from lightning_dd.losses.cmi import CMILoss, class_centroids, conditional_mutual_information
from lightning_dd.losses.distribution import MatchedEmbeddings, class_chunks, distribution_matching
from lightning_dd.losses.gradient import (
    GRADIENT_METRICS,
    class_gradient_distances,
    class_gradients,
    gradient_distance,
    gradient_distances,
    layer_distance,
    matched_parameters,
)
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
    "class_gradient_distances",
    "class_gradients",
    "conditional_mutual_information",
    "covariance_matching",
    "distribution_matching",
    "gradient_distance",
    "gradient_distances",
    "layer_distance",
    "local_covariance",
    "matched_parameters",
]
