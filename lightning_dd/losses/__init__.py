"""Losses as plain ``nn.Module``s / functions (no Lightning): matching distances (DM; gradient matching for DC, DSA,
IDC; trajectory matching for MTT) and the regularisation losses CMI (CMIDD) and IID (L_CC, L_CM)."""

from lightning_dd.losses.cmi import CMILoss, class_centroids, conditional_mutual_information
from lightning_dd.losses.distribution import (
    MatchedEmbeddings,
    class_chunks,
    distribution_matching,
    mean_embedding_distance,
    real_class_means,
)
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
from lightning_dd.losses.trajectory import (
    FlatStudent,
    constant_memory_trajectory_loss,
    flat_parameters,
    parameter_matching_loss,
    unrolled_trajectory_loss,
)

__all__ = [
    "GRADIENT_METRICS",
    "CMILoss",
    "ClassCentralizationLoss",
    "CovarianceMatchingLoss",
    "FlatStudent",
    "MatchedEmbeddings",
    "class_centralization",
    "class_centroids",
    "class_chunks",
    "class_gradient_distances",
    "class_gradients",
    "conditional_mutual_information",
    "constant_memory_trajectory_loss",
    "covariance_matching",
    "distribution_matching",
    "flat_parameters",
    "gradient_distance",
    "gradient_distances",
    "layer_distance",
    "local_covariance",
    "matched_parameters",
    "mean_embedding_distance",
    "parameter_matching_loss",
    "real_class_means",
    "unrolled_trajectory_loss",
]
