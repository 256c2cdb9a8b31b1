"""Lightning callbacks: export of the distilled set, in-run evaluation, regularizer schedules, the progress bar,
float32 matmul precision (TF32).

``ExportDistilledSet`` lives in ``lightning_dd.methods.export`` (every method returns it from
``configure_callbacks``) and is re-exported here.
"""

from lightning_dd.callbacks.evaluator import DistilledSetEvaluator
from lightning_dd.callbacks.matmul import MatmulPrecision
from lightning_dd.callbacks.progress import DistillationProgressBar
from lightning_dd.callbacks.regularization import RegularizerSchedule
from lightning_dd.methods.export import ExportDistilledSet, viewable_images

__all__ = ["DistillationProgressBar", "DistilledSetEvaluator", "ExportDistilledSet", "MatmulPrecision",
           "RegularizerSchedule", "viewable_images"]
