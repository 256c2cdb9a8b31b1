"""Lightning callbacks: export of the distilled set, in-run evaluation, regularizer schedules.

They import no method (they use what a ``DistillationModule`` exposes), so methods can return them from
``configure_callbacks`` without an import cycle.
"""

from lightning_dd.callbacks.evaluator import DistilledSetEvaluator
from lightning_dd.callbacks.export import ExportDistilledSet, viewable_images
from lightning_dd.callbacks.regularization import RegularizerSchedule

__all__ = ["DistilledSetEvaluator", "ExportDistilledSet", "RegularizerSchedule", "viewable_images"]
