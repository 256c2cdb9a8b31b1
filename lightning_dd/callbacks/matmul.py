"""TF32 / reduced-precision float32 matrix products for one fit, selectable from the command line.

    lightning-dd fit ... --trainer.callbacks+=lightning_dd.callbacks.MatmulPrecision \\
        --trainer.callbacks.precision high

``torch.set_float32_matmul_precision`` is process-global; this callback sets it (and cuDNN's TF32 switch) when the
fit starts and puts the previous values back when it ends, so a Python session that composes several fits is not
left changed.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch

__all__ = ["MATMUL_PRECISIONS", "MatmulPrecision"]

MATMUL_PRECISIONS = ("highest", "high", "medium")


class MatmulPrecision(L.Callback):
    """Float32 matrix products at ``precision`` during the fit.

    Args:
        precision: ``"highest"`` (full float32, PyTorch's default), ``"high"`` (TF32 on Ampere+ GPUs, or bf16x3),
            ``"medium"`` (bf16); see ``torch.set_float32_matmul_precision``. ``allow_tf32`` for cuDNN convolutions
            follows: on for ``"high"`` / ``"medium"``, off for ``"highest"``. No effect on the CPU's results.
    """

    def __init__(self, precision: Literal["highest", "high", "medium"] = "high") -> None:
        if precision not in MATMUL_PRECISIONS:
            raise ValueError(f"precision must be one of {MATMUL_PRECISIONS}, got {precision!r}")
        self.precision = precision
        self._saved: tuple[str, bool] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._saved = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
        torch.set_float32_matmul_precision(self.precision)
        torch.backends.cudnn.allow_tf32 = self.precision != "highest"

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._saved is not None:
            torch.set_float32_matmul_precision(self._saved[0])
            torch.backends.cudnn.allow_tf32 = self._saved[1]
            self._saved = None
