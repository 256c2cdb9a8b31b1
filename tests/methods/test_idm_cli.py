"""IDM, IDM + IID and IDM + CMI through the real command line with the shipped fragments (method fragment and the
published IID / CMI cells, pool pointed at a digits proxy pool) on the embedded digits dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from lightning_dd.artifact import DistilledSet
from lightning_dd.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
#: two iterations (10 image steps each) with a small queue
TINY = ["--data.dataset", "digits", "--data.batch_real", "8", "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--trainer.callbacks=[]",
        "--trainer.max_steps", "20", "--model.model_train_steps", "2", "--model.batch_train", "16",
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.log_every_n_steps", "1"]


@pytest.fixture(autouse=True)
def _argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["lightning-dd"])


def fit(root: Path, *extra: str) -> tuple[DistilledSet, list[str]]:
    """A run of the method fragment plus ``extra`` (IPC 1 last, after any cell that pins it)."""
    main(["fit", "--config", str(CONFIGS / "method" / "idm.yaml"), *TINY, "--trainer.default_root_dir", str(root),
          "--trainer.logger.save_dir", str(root), *extra, "--model.ipc", "1"])
    (path,) = root.glob("**/distilled.pt")
    (metrics,) = root.glob("**/metrics.csv")
    return DistilledSet.load(path), metrics.read_text().splitlines()[0].split(",")


def test_idm_fits_through_the_cli_and_stores_the_expanded_images(tmp_path: Path) -> None:
    d, header = fit(tmp_path)
    assert (d.method, d.dataset, d.ipc, d.space) == ("IDM", "digits", 1, "normalized")
    assert tuple(d.images.shape) == (40, 1, 8, 8)  # 2x2 partition: 4 training images per stored image
    assert d.labels.bincount().tolist() == [4] * 10
    assert d.provenance["iterations"] == 2  # one image step per class per iteration
    assert d.hparams["ce_weight"] == 0.5 and d.hparams["partition"] is True
    assert {"train/loss", "train/ce_weight", "train/queue_size"} <= set(header)


@pytest.mark.parametrize("reg", ["iid", "cmi"])
def test_idm_with_a_published_regularizer_cell_changes_the_images(reg: str, tmp_path: Path, pool_path: Path) -> None:
    plain, _ = fit(tmp_path / "plain")
    cell = CONFIGS / "overrides" / f"idm_{reg}" / "cifar10_ipc10.yaml"
    regularized, header = fit(tmp_path / reg, "--config", str(cell), "--model.regularizers.pool", str(pool_path))
    (item,) = regularized.hparams["regularizers"]
    if reg == "iid":
        assert item["class_path"].endswith("IIDRegularizer")
        assert item["weights"] == {"iid_cm": 0.03, "iid_cc": 0.01}
        assert {"reg/iid_cc", "reg/iid_cm"} <= set(header)  # both terms reached the hook
    else:
        assert item["class_path"].endswith("CMIRegularizer") and item["reduction"] == "per_class"
        assert item["weights"] == {"cmi": 800}
        assert "reg/cmi" in header
    assert regularized.images.shape == plain.images.shape
    assert torch.isfinite(regularized.images).all()
    assert not torch.equal(regularized.images, plain.images)  # same seed: only the regularizer differs


def test_the_report_names_the_expanded_images_per_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    main(["fit", "--config", str(CONFIGS / "method" / "idm.yaml"), *TINY[:-4], "--trainer.default_root_dir",
          str(tmp_path), "--trainer.callbacks+=lightning_dd.callbacks.DistilledSetEvaluator",
          "--trainer.callbacks.num_students", "1", "--trainer.callbacks.epochs", "1", "--model.ipc", "1"])
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if "IDM (distilled)" in line]
    assert row.split()[2:5] == ["1", "->", "4"]  # 1 stored image per class trains students on 4
    (random_row,) = [line for line in out.splitlines() if "random real subset" in line]
    assert random_row.split()[3] == "1"
