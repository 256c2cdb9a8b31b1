"""Lightning callbacks: in-run evaluation and image grids."""

from lightning_dd.callbacks.evaluator import DistilledSetEvaluator
from lightning_dd.callbacks.images import save_image_grid, viewable_images
from lightning_dd.callbacks.regularization import CMIRegularization, IIDRegularization, RegularizationCallback

__all__ = [
    "CMIRegularization",
    "DistilledSetEvaluator",
    "IIDRegularization",
    "RegularizationCallback",
    "save_image_grid",
    "viewable_images",
]
