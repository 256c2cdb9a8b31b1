"""The regularizers through the real ``lightning-dd`` entry point: ``pretrain``, ``cmi``, and a DM+CMI+IID ``fit``
whose regularizers come from a YAML file."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lightning_dd.artifact import DistilledSet
from lightning_dd.cli import main
from lightning_dd.data import RealDataModule
from lightning_dd.losses import CMILoss
from lightning_dd.pretrained import ProxyPool


@pytest.fixture(autouse=True)
def _cli_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_DD_CACHE", str(tmp_path / "tensor-cache"))
    monkeypatch.setattr(sys, "argv", ["lightning-dd"])


def json_line(capsys: pytest.CaptureFixture[str]) -> dict:
    """The command's single JSON output line (other output, e.g. progress, may precede it)."""
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 1, lines
    return json.loads(lines[0])


def fit_args(root: Path, model: str, *extra: str) -> list[str]:
    return [
        "fit", "--model", model, "--data.dataset", "digits", "--model.ipc", "3", "--data.batch_real", "8",
        "--trainer.max_steps", "3", "--trainer.default_root_dir", str(root),
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger", "--trainer.logger.save_dir", str(root),
        "--trainer.log_every_n_steps", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def regularized_run(pool_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DM + CMI + IID fit on digits through ``main(["fit", ...])``, regularizers given as a YAML file; returns
    its log directory."""
    root = tmp_path_factory.mktemp("dm_cmi_iid")
    regs = root / "regularizers.yaml"
    regs.write_text(yaml.safe_dump([
        {"class_path": "lightning_dd.regularizers.CMIRegularizer",
         "init_args": {"pool": str(pool_path), "weight": 1e4}},
        {"class_path": "lightning_dd.regularizers.IIDRegularizer",
         "init_args": {"pool": str(pool_path), "weight_cc": 0.05, "weight_cm": 0.01}},
    ]))  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIGHTNING_DD_CACHE", str(root / "tensor-cache"))
        mp.setattr(sys, "argv", ["lightning-dd"])
        main(fit_args(root, "DM", "--model.regularizers", str(regs)))
    (artifact,) = root.glob("**/distilled.pt")
    return artifact.parent


# ------------------------------------------------------------------------------------------------ pretrain


def test_pretrain_writes_a_pool_that_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "pools" / "digits_convnet.pt"
    main([
        "pretrain", "--data.dataset", "digits", "--output", str(output), "--network", "convnet", "--num_models", "2",
        "--epochs", "1", "--max_images_per_class", "10", "--batch_size", "50", "--trainer.accelerator", "cpu",
    ])  # fmt: skip
    result = json_line(capsys)
    assert result["pool"] == str(output) and output.is_file()
    assert (result["dataset"], result["network"], result["num_models"]) == ("digits", "convnet", 2)
    assert len(result["train_accuracy"]) == 2 and all(0 <= a <= 1 for a in result["train_accuracy"])
    pool = ProxyPool.load(output)
    assert (pool.dataset, pool.network, len(pool), pool.image_shape, pool.num_classes) == (
        "digits", "convnet", 2, (1, 8, 8), 10)  # fmt: skip
    assert pool.info["train_images"] == 100 and pool.info["epochs"] == 1
    assert pool.info["train_accuracy"] == result["train_accuracy"]
    data = RealDataModule("digits")
    assert (pool.mean, pool.std) == (tuple(data.mean), tuple(data.std))  # the normalisation it was trained with
    assert all(not p.requires_grad for net in pool.networks for p in net.parameters())


# ------------------------------------------------------------------------------------------------ fit


def test_dm_cmi_iid_fit_writes_an_artifact_and_logs_the_terms(regularized_run: Path) -> None:
    d = DistilledSet.load(regularized_run / "distilled.pt")
    assert (d.method, d.dataset, d.ipc) == ("DM", "digits", 3)
    assert d.images.shape == (30, 1, 8, 8) and torch.isfinite(d.images).all()
    assert [r["class_path"].rpartition(".")[2] for r in d.hparams["regularizers"]] == [
        "CMIRegularizer", "IIDRegularizer"]  # fmt: skip
    with open(regularized_run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for name in ("reg/cmi", "reg/iid_cc", "reg/iid_cm"):
        values = [float(r[name]) for r in rows if r.get(name)]
        assert values and all(math.isfinite(v) and v > 0 for v in values), name
    config = yaml.safe_load((regularized_run / "config.yaml").read_text())
    assert [r["class_path"] for r in config["model"]["init_args"]["regularizers"]] == [
        "lightning_dd.regularizers.CMIRegularizer", "lightning_dd.regularizers.IIDRegularizer"]  # fmt: skip


# ------------------------------------------------------------------------------------------------ cmi


def independent_cmi(artifact: Path, pool_path: Path) -> list[float]:
    d = DistilledSet.load(artifact)
    pool = ProxyPool.load(pool_path)
    with torch.no_grad():
        return [float(CMILoss()(d.images, d.labels, net, d.num_classes)) for net in pool.networks]


def test_cmi_command_reports_the_mean_of_per_proxy_values(
    regularized_run: Path, pool_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = regularized_run / "distilled.pt"
    main(["cmi", "--distilled", str(artifact), "--pool", str(pool_path)])
    result = json_line(capsys)
    expected = independent_cmi(artifact, pool_path)
    assert result["cmi_per_proxy"] == pytest.approx(expected, rel=1e-6)
    assert result["cmi_mean"] == pytest.approx(sum(expected) / len(expected), rel=1e-6)
    assert result["cmi_mean"] > 0 and len(set(expected)) == 2  # two proxies, two different values
    assert (result["method"], result["ipc"], result["distilled"], result["pool"]) == (
        "DM", 3, str(artifact), str(pool_path))  # fmt: skip


def test_cmi_of_the_random_baseline_is_measurable(
    pool_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(fit_args(tmp_path, "RandomSelection"))
    (artifact,) = tmp_path.glob("**/distilled.pt")
    capsys.readouterr()
    main(["cmi", "--distilled", str(artifact), "--pool", str(pool_path)])
    result = json_line(capsys)
    assert (result["method"], result["ipc"]) == ("random", 3)
    expected = independent_cmi(artifact, pool_path)
    assert result["cmi_mean"] == pytest.approx(sum(expected) / len(expected), rel=1e-6)
    assert result["cmi_mean"] > 0


def test_cmi_command_errors(
    regularized_run: Path, pool_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = str(regularized_run / "distilled.pt")
    missing = tmp_path / "nope.pt"
    with pytest.raises(SystemExit) as info:
        main(["cmi", "--distilled", artifact, "--pool", str(missing)])
    err = capsys.readouterr().err
    assert info.value.code == 2 and str(missing) in err and "lightning-dd pretrain" in err
    other = ProxyPool.load(pool_path)
    other.dataset = "mnist"
    other_path = other.save(tmp_path / "mnist.pt")
    with pytest.raises(SystemExit) as info:
        main(["cmi", "--distilled", artifact, "--pool", str(other_path)])
    assert info.value.code == 2 and "dataset 'mnist' (run: 'digits')" in capsys.readouterr().err
