"""Callbacks that attach a regularizer to whatever distillation module is being fitted, and own its λ schedule.

``--trainer.callbacks+=lightning_dd.callbacks.CMIRegularization --trainer.callbacks.pool pool.pt
--trainer.callbacks.weight 8000`` adds CMI to any method without touching its config; in Python,
``Trainer(callbacks=[CMIRegularization(pool, weight=8000)])``. The result is identical to listing the same
regularizer under the method's ``regularizers:``.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
from lightning.pytorch.callbacks import Callback

from lightning_dd.regularizers import CMIRegularizer, IIDRegularizer, RegularizationMixin, Regularizer


class RegularizationCallback(Callback):
    """Attach ``regularizer`` at ``setup`` and scale its weights each iteration.

    Schedule: λ_t = λ · min(1, (t + 1) / warmup_steps) (linear warm-up; ``warmup_steps=0`` = constant λ). The
    regularizer's own ``every_n_steps`` skips the computation between active steps. Logs ``reg/scale/<name>``.
    """

    def __init__(self, regularizer: Regularizer, warmup_steps: int = 0) -> None:
        super().__init__()
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.regularizer = regularizer
        self.warmup_steps = warmup_steps

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

    def scale_at(self, step: int) -> float:
        return 1.0 if self.warmup_steps == 0 else min(1.0, (step + 1) / self.warmup_steps)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object,
                             batch_idx: int) -> None:
        self.regularizer.scale = self.scale_at(trainer.global_step)
        if self.warmup_steps:
            pl_module.log(f"reg/scale/{type(self.regularizer).__name__}", self.regularizer.scale)


class CMIRegularization(RegularizationCallback):
    """Attach a :class:`~lightning_dd.regularizers.CMIRegularizer` (arguments as there) with an optional warm-up."""

    def __init__(
        self,
        pool: str,
        weight: float,
        output: Literal["features", "logits"] = "features",
        temperature: float = 1.0,
        reduction: Literal["global", "per_class"] = "global",
        augmented: bool = False,
        every_n_steps: int = 1,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__(CMIRegularizer(pool, weight, output, temperature, reduction, augmented, every_n_steps),
                         warmup_steps)


class IIDRegularization(RegularizationCallback):
    """Attach an :class:`~lightning_dd.regularizers.IIDRegularizer` (arguments as there) with an optional warm-up."""

    def __init__(
        self,
        pool: str,
        weight_cc: float = 0.05,
        weight_cm: float = 0.01,
        cc_form: Literal["squared", "exp"] = "squared",
        beta: float = 0.0,
        scale: float = 0.02,
        every_n_steps: int = 1,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__(IIDRegularizer(pool, weight_cc, weight_cm, cc_form, beta, scale, every_n_steps),
                         warmup_steps)
