"""Lightning callbacks: in-run evaluation and image grids."""

from lightning_dd.callbacks.evaluator import DistilledSetEvaluator
from lightning_dd.callbacks.images import save_image_grid, viewable_images

__all__ = ["DistilledSetEvaluator", "save_image_grid", "viewable_images"]
