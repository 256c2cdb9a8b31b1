"""DC, DSA and IDC through the real command line (shipped method fragments) on the embedded digits dataset, with
CMI and IID plugged in through the regularizer hook, and IDC's evaluation recipe."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lightning_dd.artifact import DistilledSet
from lightning_dd.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = ["--data.dataset", "digits", "--data.batch_real", "8", "--model.ipc", "1", "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(autouse=True)
def _argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["lightning-dd"])


def fit(method: str, root: Path, *extra: str) -> DistilledSet:
    main(["fit", "--config", str(CONFIGS / "method" / f"{method}.yaml"), *TINY, "--trainer.default_root_dir",
          str(root), *extra])
    (path,) = root.glob("**/distilled.pt")
    return DistilledSet.load(path)


def regularizers(pool_file: Path) -> list[str]:
    return ["--config", str(CONFIGS / "regularizers" / "cmi.yaml"), "--model.regularizers.pool", str(pool_file),
            "--model.regularizers.weight", "10", "--config", str(CONFIGS / "regularizers" / "iid.yaml"),
            "--model.regularizers.pool", str(pool_file)]


@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_dc_and_dsa_fit_through_the_cli(method: str, tmp_path: Path) -> None:
    d = fit(method, tmp_path, "--trainer.max_steps", "2", "--trainer.callbacks=[]", "--model.inner_loop", "2")
    assert (d.method, d.dataset, d.ipc, d.space, d.factor) == (method.upper(), "digits", 1, "normalized", 1)
    assert tuple(d.images.shape) == (10, 1, 8, 8)
    assert d.provenance["iterations"] == 2  # IPC 1: one image step per iteration
    assert d.hparams["metric"] == "ours" and d.hparams["dsa_strategy"] == ("none" if method == "dc" else "auto")


def test_dsa_with_cmi_and_iid(tmp_path: Path, pool_path: Path) -> None:
    d = fit("dsa", tmp_path, "--trainer.max_steps", "2", "--trainer.callbacks=[]", "--model.ipc", "2",
            "--model.outer_loop", "2", "--model.inner_loop", "1", *regularizers(pool_path),
            "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(tmp_path),
            "--trainer.log_every_n_steps", "1")
    assert [r["class_path"].rsplit(".", 1)[1] for r in d.hparams["regularizers"]] == ["CMIRegularizer",
                                                                                        "IIDRegularizer"]
    (metrics,) = tmp_path.glob("**/metrics.csv")
    header = metrics.read_text().splitlines()[0]
    assert "reg/cmi" in header and "reg/iid_cc" in header and "reg/iid_cm" in header  # the hook reached both


def test_idc_fits_decodes_and_evaluates_with_its_own_recipe(tmp_path: Path, pool_path: Path) -> None:
    d = fit("idc", tmp_path, "--trainer.max_steps", "20", "--model.n_data", "64", "--model.inner_loop", "2",
            "--trainer.callbacks+=lightning_dd.callbacks.DistilledSetEvaluator", "--trainer.callbacks.recipe", "idc",
            "--trainer.callbacks.num_students", "1", "--trainer.callbacks.epochs", "2",
            "--trainer.callbacks.compare_random", "false", *regularizers(pool_path))
    assert (d.method, d.space, d.factor, d.ipc) == ("IDC", "pixels", 2, 1)
    assert tuple(d.images.shape) == (40, 1, 8, 8)  # decoded: ipc x factor^2 per class
    assert d.provenance["iterations"] == 2  # 10 image steps (one per class) per iteration
    (eval_json,) = tmp_path.glob("**/eval.json")
    result = json.loads(eval_json.read_text())
    assert result["recipe"] == "idc" and 0 <= result["IDC"]["convnet"]["mean"] <= 100


def test_evaluate_command_takes_the_idc_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fit("idc", tmp_path / "run", "--trainer.max_steps", "10", "--model.n_data", "32", "--trainer.callbacks=[]")
    (artifact,) = (tmp_path / "run").glob("**/distilled.pt")
    capsys.readouterr()
    main(["evaluate", "--distilled", str(artifact), "--runs", "1", "--epochs", "2", "--recipe", "idc",
          "--trainer.accelerator", "cpu"])
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (result["recipe"], result["batch_size"], result["method"]) == ("idc", 64, "IDC")
