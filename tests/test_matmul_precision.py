"""MatmulPrecision: the fit runs at the chosen float32 matmul precision, and the previous setting comes back."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from lightning_dd.callbacks import MatmulPrecision
from lightning_dd.cli import main
from tests.helpers import digits_data, quiet_trainer, tiny_dm


class Seen(L.Callback):
    def on_train_batch_start(self, *args: object) -> None:
        self.precision = torch.get_float32_matmul_precision()
        self.cudnn_tf32 = torch.backends.cudnn.allow_tf32


@pytest.mark.parametrize("precision", ["high", "medium", "highest"])
def test_the_fit_runs_at_the_precision_and_restores_the_previous_one(precision: str, tmp_path: Path) -> None:
    before = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
    seen = Seen()
    quiet_trainer(tmp_path, max_steps=1, callbacks=[MatmulPrecision(precision), seen]).fit(tiny_dm(), digits_data())
    assert (seen.precision, seen.cudnn_tf32) == (precision, precision != "highest")
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == before


def test_a_bad_precision_is_refused() -> None:
    with pytest.raises(ValueError, match=r"precision must be one of \('highest', 'high', 'medium'\), got 'low'"):
        MatmulPrecision("low")  # type: ignore[arg-type]


def test_it_is_selectable_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["lightning-dd"])
    before = torch.get_float32_matmul_precision()
    main(["fit", "--config", str(Path(__file__).resolve().parents[1] / "configs" / "method" / "dm.yaml"),
          "--data.dataset", "digits", "--model.ipc", "1", "--trainer.max_steps", "1",
          "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--trainer.callbacks=[]",
          "--trainer.callbacks+=lightning_dd.callbacks.MatmulPrecision", "--trainer.callbacks.precision", "medium",
          "--trainer.default_root_dir", str(tmp_path)])
    assert list(tmp_path.glob("**/distilled.pt"))
    assert torch.get_float32_matmul_precision() == before
