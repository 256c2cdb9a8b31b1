"""The ``lightning-dd`` command line through its real entry point (``lightning_dd.cli.main``, ``python -m``)."""

from __future__ import annotations

import json
import os
import runpy
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

import lightning_dd
from lightning_dd.artifact import DistilledSet
from lightning_dd.cli import main
from tests.fixtures import CIFAR10_CLASSES, write_cifar10

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _cli_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private tensor cache, and a clean ``sys.argv`` as the console script would see (no pytest arguments)."""
    monkeypatch.setenv("LIGHTNING_DD_CACHE", str(tmp_path / "tensor-cache"))
    monkeypatch.setattr(sys, "argv", ["lightning-dd"])


def fit_args(root: Path, *extra: str) -> list[str]:
    return [
        "fit", "--model", "DM", "--data.dataset", "digits", "--model.ipc", "1", "--data.batch_real", "8",
        "--trainer.max_steps", "3", "--trainer.default_root_dir", str(root),
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", *extra,
    ]  # fmt: skip


def composed(*fragments: str) -> list[str]:
    """``--config configs/<fragment>.yaml`` for each fragment, in order (the layout of configs/README.md)."""
    return [arg for name in fragments for arg in ("--config", str(REPO / "configs" / f"{name}.yaml"))]


def run_dir(root: Path) -> Path:
    (artifact,) = root.glob("**/distilled.pt")
    return artifact.parent


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny DM fit on digits with the default seed (0); returns its log directory."""
    root = tmp_path_factory.mktemp("digits_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIGHTNING_DD_CACHE", str(root / "tensor-cache"))
        mp.setattr(sys, "argv", ["lightning-dd"])
        main(fit_args(root))
    return run_dir(root)


def failure_text(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``main(args)``, which must fail; return the error wherever it ended up (exception, exit, stderr)."""
    with pytest.raises((SystemExit, ValueError, FileNotFoundError, TypeError)) as info:
        main(args)
    if isinstance(info.value, SystemExit):
        assert info.value.code not in (0, None), "a failure must exit with a non-zero status"
    captured = capsys.readouterr()
    return f"{info.value}\n{captured.err}\n{captured.out}"


# ---------------------------------------------------------------------------------------------------------- fit


def test_fit_writes_artifact_grid_and_config(digits_run: Path) -> None:
    assert digits_run.parts[-2:] == ("lightning_logs", "version_0")  # the path the README's snippet loads
    assert (digits_run / "distilled.png").is_file()
    assert (digits_run / "config.yaml").is_file()
    d = DistilledSet.load(digits_run / "distilled.pt")
    assert (d.method, d.dataset, d.ipc, d.seed) == ("DM", "digits", 1, 0)
    assert d.images.shape == (10, 1, 8, 8) and d.images.dtype == torch.float32
    assert torch.equal(d.labels, torch.arange(10))
    assert d.class_names == tuple(str(i) for i in range(10))
    assert torch.isfinite(d.images).all()
    assert d.hparams["ipc"] == 1 and d.hparams["network"] == "convnet"
    with Image.open(digits_run / "distilled.png") as grid:
        assert grid.width > 8 and grid.height >= 10 * 8  # one row per class
    config = yaml.safe_load((digits_run / "config.yaml").read_text())
    assert config["model"]["class_path"] == "lightning_dd.methods.DM"
    assert config["data"]["init_args"]["dataset"] == "digits"
    assert config["trainer"]["max_steps"] == 3
    assert config["seed_everything"] == 0


def test_fit_on_cifar10_original_pickles(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_cifar10(data, train_per_class=2, test_per_class=1)
    out = tmp_path / "out"
    main([
        "fit", "--model", "DM", "--data.dataset", "cifar10", "--data.root", str(data), "--data.batch_real", "2",
        "--model.ipc", "1", "--model.network", "convnet_w32", "--trainer.max_steps", "2",
        "--trainer.default_root_dir", str(out), "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ])  # fmt: skip
    d = DistilledSet.load(run_dir(out) / "distilled.pt")
    assert (d.method, d.dataset, d.ipc) == ("DM", "cifar10", 1)
    assert d.images.shape == (10, 3, 32, 32)
    assert d.class_names == CIFAR10_CLASSES
    assert d.mean == pytest.approx((0.4914, 0.4822, 0.4465))
    assert torch.isfinite(d.images).all()


def test_seed_everything_fixes_the_images(digits_run: Path, tmp_path: Path) -> None:
    reference = DistilledSet.load(digits_run / "distilled.pt")
    main(fit_args(tmp_path / "same", "--seed_everything", "0"))
    main(fit_args(tmp_path / "other", "--seed_everything", "1"))
    same = DistilledSet.load(run_dir(tmp_path / "same") / "distilled.pt")
    other = DistilledSet.load(run_dir(tmp_path / "other") / "distilled.pt")
    assert torch.equal(same.images, reference.images), "the same seed must give bit-identical images"
    assert other.seed == 1
    assert not torch.allclose(other.images, reference.images), "another seed must give other images"


def test_print_config_of_a_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    configs = composed("trainer/reference", "method/dm", "data/cifar10")
    with pytest.raises(SystemExit) as info:
        main(["fit", *configs, "--model.ipc", "10", "--print_config"])
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "class_path: lightning_dd.methods.DM" in out
    config = yaml.safe_load(out)
    assert config["model"]["init_args"]["ipc"] == 10
    assert config["data"]["init_args"]["dataset"] == "cifar10"


def test_fit_with_the_in_run_evaluator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evaluator = [
        "--trainer.callbacks+=lightning_dd.callbacks.DistilledSetEvaluator", "--trainer.callbacks.every_n_steps", "2",
        "--trainer.callbacks.epochs", "2", "--trainer.callbacks.num_students", "2",
        "--trainer.callbacks.models", "[mlp]",
    ]  # fmt: skip
    main(fit_args(tmp_path, "--trainer.max_steps", "2", *evaluator))
    results = json.loads((run_dir(tmp_path) / "eval.json").read_text())
    assert (results["iteration"], results["epochs"], results["students"]) == (2, 2, 2)
    for key in ("DM", "random"):
        stats = results[key]["mlp"]
        assert len(stats["accs"]) == 2
        assert stats["mean"] == pytest.approx(statistics.fmean(stats["accs"]))
        assert stats["std"] == pytest.approx(statistics.pstdev(stats["accs"]))
    out = capsys.readouterr().out
    assert "test accuracy % after 2 iterations" in out and "random real subset                  1" in out


def test_main_reads_sys_argv_without_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = composed("trainer/reference", "method/dm", "data/mnist")
    monkeypatch.setattr(sys, "argv", ["lightning-dd", "fit", *configs, "--model.ipc", "1", "--print_config"])
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SystemExit) as info:
        warnings.simplefilter("always")
        main()
    assert info.value.code in (0, None)
    assert "dataset: mnist" in capsys.readouterr().out
    assert not [w for w in caught if "args parameter" in str(w.message)]


# ---------------------------------------------------------------------------------------------------------- evaluate


def test_evaluate_prints_one_json_line_and_writes_it(
    digits_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "results" / "eval.json"
    capsys.readouterr()
    main([
        "evaluate", "--distilled", str(digits_run / "distilled.pt"), "--runs", "2", "--epochs", "2",
        "--models", "[convnet, mlp]", "--output", str(output), "--trainer.accelerator", "cpu",
    ])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    result = json.loads(lines[0])
    assert result["distilled"] == str(digits_run / "distilled.pt")
    assert (result["dataset"], result["method"], result["ipc"], result["epochs"], result["runs"]) == (
        "digits",
        "DM",
        1,
        2,
        2,
    )
    assert list(result["results"]) == ["convnet", "mlp"]
    for stats in result["results"].values():
        assert len(stats["accs"]) == 2 and all(0.0 <= a <= 100.0 for a in stats["accs"])
        assert stats["mean"] == pytest.approx(statistics.fmean(stats["accs"]), abs=1e-3)
        assert stats["std"] == pytest.approx(statistics.pstdev(stats["accs"]), abs=1e-3)
    assert json.loads(output.read_text()) == result
    assert os.listdir(output.parent) == ["eval.json"]


# ---------------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--data.dataset", "foo"], ["Got value: foo", "'cifar10'"]),  # parse-time choices
        (["--model.network", "foo"], ["Got value: foo", "'convnet'"]),
        (["--model.ipc", "0"], ["ipc", "got 0"]),
        (["--data.batch_real", "0"], ["batch_real must be an integer >= 1, got 0"]),
        (["--data.dataset", "cifar10"], ["'cifar10'", "root", "--data.root", "root/train/<class>", "original format"]),
    ],
)
def test_fit_rejects_bad_values_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: list[str]
) -> None:
    text = failure_text(fit_args(tmp_path, *extra), capsys)
    for piece in expected:
        assert piece in text
    assert not list(tmp_path.glob("**/distilled.pt")) and not list(tmp_path.glob("**/*.ckpt"))


def test_fit_with_empty_root_says_where_the_files_must_be(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    text = failure_text(fit_args(tmp_path / "out", "--data.dataset", "cifar10", "--data.root", str(empty)), capsys)
    assert str(empty) in text
    assert "cifar-10-batches-py" in text and "train/<class>" in text and "--data.download" in text
    assert not list(tmp_path.glob("**/distilled.pt"))


def test_evaluate_missing_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = failure_text(["evaluate", "--distilled", str(tmp_path / "missing.pt")], capsys)
    assert "missing.pt" in text and "does not exist" in text


def test_evaluate_corrupt_artifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"not a torch file at all")
    text = failure_text(["evaluate", "--distilled", str(path)], capsys)
    assert "corrupt.pt" in text and "not a readable lightning_dd distilled set" in text


def test_evaluate_unknown_model_fails_fast(digits_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "evaluate",
        "--distilled",
        str(digits_run / "distilled.pt"),
        "--models",
        "[mlp, foonet]",
        "--epochs",
        "1000",
    ]  # 1000 epochs x 5 runs would take minutes if it trained before checking
    text = failure_text(args, capsys)
    assert "unknown network 'foonet'" in text
    assert "Trainer.fit" not in text


# ---------------------------------------------------------------------------------------------------------- entry point


def test_python_m_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_dd", "--version"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"lightning-dd {lightning_dd.__version__}"


def test_module_help_mentions_both_commands(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["lightning-dd", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("lightning_dd", run_name="__main__")
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "usage: lightning-dd" in out and "fit" in out and "evaluate" in out


def test_evaluate_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--help"])
    assert info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "--distilled" in out and "--models" in out and "--runs" in out
