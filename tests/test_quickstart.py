"""The quickstart's promise: one table (whole set, random, DM) where DM clearly beats random, numbers in the logger,
readable pictures on disk. The default suite runs it on a reduced budget; the full command is marked slow."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from lightning_dd.artifact import DistilledSet
from lightning_dd.cli import main
from lightning_dd.visualize import image_grid

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")


def table(out: str) -> dict[str, tuple[float, float]]:
    """``{row label: (mean, std)}`` of the printed results table."""
    rows = {}
    for label in ("whole train set", "random real subset", "DM (distilled)"):
        (line,) = [x for x in out.splitlines() if x.strip().startswith(label)]
        mean, std = line.split("convnet")[1].split()[0:3:2]
        rows[label] = (float(mean), float(std))
    return rows


def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    monkeypatch.chdir(tmp_path)
    argv = ["fit", "--config", QUICKSTART, "--trainer.accelerator", "cpu", *extra]
    monkeypatch.setattr(sys, "argv", ["lightning-dd", *argv])
    main(argv)
    return capsys.readouterr().out


def test_quickstart_on_a_reduced_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = run(tmp_path, monkeypatch, capsys, "--trainer.max_steps", "100", "--trainer.callbacks.num_students", "2",
              "--trainer.callbacks.epochs", "100", "--trainer.callbacks.whole_epochs", "3")
    rows = table(out)
    assert rows["DM (distilled)"][0] >= rows["random real subset"][0] + 10  # the point of distillation
    assert "vs random" in out and "+" in out.splitlines()[-1]
    run_dir = tmp_path / "lightning_logs" / "version_0"
    # the numbers reach the logger (CSV here), hp_metric included
    with open(run_dir / "metrics.csv") as f:
        logged = [row for row in csv.DictReader(f) if row.get("hp_metric")]
    assert float(logged[-1]["hp_metric"]) == pytest.approx(rows["DM (distilled)"][0], abs=0.01)
    assert float(logged[-1]["eval/final/whole/convnet/acc_mean"]) == pytest.approx(rows["whole train set"][0],
                                                                                   abs=0.01)
    # pictures: the captioned final grid, the initial set beside it, the accuracy curve; the artifact's record
    grid, pair = Image.open(run_dir / "distilled.png"), Image.open(run_dir / "distilled_vs_initial.png")
    assert max(grid.size) >= 256 and pair.size[0] > 2 * grid.size[0] - 20
    assert (run_dir / "accuracy.png").is_file()
    record = DistilledSet.load(run_dir / "distilled.pt").provenance
    assert record["evaluation"]["DM"]["convnet"]["mean"] == pytest.approx(rows["DM (distilled)"][0], abs=0.01)
    assert record["iterations"] == 100 and len(record["init_indices"]) == 10


@pytest.mark.slow
def test_the_quickstart_command_as_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rows = table(run(tmp_path, monkeypatch, capsys))
    assert rows["DM (distilled)"][0] >= rows["random real subset"][0] + 10
    assert rows["whole train set"][0] > rows["DM (distilled)"][0]


def test_grid_is_enlarged_and_captioned() -> None:
    pixels = torch.zeros(20, 1, 8, 8)  # black images: any non-white pixel left of them is caption ink
    plain = image_grid(pixels, 2)
    captioned = image_grid(pixels, 2, class_names=[f"class {c}" for c in range(10)], title="DM IPC 2")
    assert max(plain.shape[1:]) >= 256 and plain.shape[1] % (10 * 9 + 1) == 0  # 91 px times an integer: crisp
    margin = captioned.shape[2] - plain.shape[2]
    top = captioned.shape[1] - plain.shape[1]
    assert margin > 0 and top > 0
    assert (captioned[:, top:, :margin] < 0.5).any()  # the row captions were drawn
    assert (captioned[:, :top, margin:] < 0.5).any()  # and the title
    assert torch.equal(captioned[:, top:, margin:], plain)  # beside an unchanged grid


def test_curves_without_matplotlib_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightning_dd.visualize import plot_curves

    assert plot_curves(tmp_path / "a.png", [(10, 50.0), (20, 60.0)], {"random (40.0)": 40.0}, [(10, 0.2)])
    assert Image.open(tmp_path / "a.png").size == (600, 400)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert not plot_curves(tmp_path / "b.png", [(10, 50.0)])
    assert not (tmp_path / "b.png").exists()
