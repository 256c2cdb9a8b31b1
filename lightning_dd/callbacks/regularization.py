"""One generic callback that attaches any regularizer to the module being fitted and owns its λ schedule.

``--trainer.callbacks+=lightning_dd.callbacks.RegularizerSchedule
--trainer.callbacks.regularizer lightning_dd.regularizers.CMIRegularizer --trainer.callbacks.regularizer.pool pool.pt
--trainer.callbacks.regularizer.weight 8000 --trainer.callbacks.warmup_iterations 500`` adds CMI (or any other
:class:`~lightning_dd.regularizers.Regularizer`) to any method without touching its config; in Python,
``Trainer(callbacks=[RegularizerSchedule(CMIRegularizer(pool, weight=8000))])``. With a constant λ the result is
identical to listing the same regularizer under the method's ``regularizers:``.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import Callback

from lightning_dd.regularizers import RegularizationMixin, Regularizer

__all__ = ["RegularizerSchedule"]


class RegularizerSchedule(Callback):
    """Attach ``regularizer`` at ``setup`` and scale its weights at every iteration.

    Schedule: λ_t = λ · min(1, (t + 1) / warmup_iterations) at iteration t (0-based; linear warm-up;
    ``warmup_iterations=0`` = constant λ). Iterations, not optimizer steps, whatever the method's image steps per
    iteration. The regularizer's own ``every_n_steps`` skips the computation between active iterations. Logs
    ``reg/scale/<RegularizerClass>`` during the warm-up.

    Args:
        regularizer: any regularizer (``CMIRegularizer``, ``IIDRegularizer``, yours).
        warmup_iterations: length of the linear warm-up of λ.
    """

    def __init__(self, regularizer: Regularizer, warmup_iterations: int = 0) -> None:
        super().__init__()
        if not isinstance(regularizer, Regularizer):
            raise TypeError(f"regularizer must be a lightning_dd Regularizer, got {type(regularizer).__name__}")
        if isinstance(warmup_iterations, bool) or warmup_iterations < 0:
            raise ValueError(f"warmup_iterations must be an integer >= 0, got {warmup_iterations!r}")
        self.regularizer = regularizer
        self.warmup_iterations = warmup_iterations

    @property
    def state_key(self) -> str:
        return f"{type(self).__name__}[{type(self.regularizer).__name__}]"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if not isinstance(pl_module, RegularizationMixin):
            raise TypeError(f"{type(self).__name__} needs a module with the regularizer hook (a DistillationModule or "
                            f"a RegularizationMixin), got {type(pl_module).__name__}")
        # once per module (setup runs again for validate/test), but on every module this callback is fitted with
        if not any(reg is self.regularizer for reg in pl_module.regularizers):
            pl_module.attach_regularizer(self.regularizer)

    def scale_at(self, iteration: int) -> float:
        """The λ multiplier at (0-based) ``iteration``."""
        return 1.0 if self.warmup_iterations == 0 else min(1.0, (iteration + 1) / self.warmup_iterations)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object,
                             batch_idx: int) -> None:
        iteration = int(getattr(pl_module, "iteration", trainer.global_step))
        self.regularizer.scale = self.scale_at(iteration)
        if self.warmup_iterations:
            pl_module.log(f"reg/scale/{type(self.regularizer).__name__}", self.regularizer.scale)
