"""The docs' example method: under 60 lines, identical to the docs page, and run through the real CLI."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from lightning_dd.artifact import DistilledSet
from lightning_dd.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture
def docs_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DOCS))
    sys.modules.pop("example_method", None)


def test_the_example_is_small_and_is_what_the_docs_show() -> None:
    code = (DOCS / "example_method.py").read_text()
    assert len(code.splitlines()) < 60
    page = (DOCS / "adding_a_method.md").read_text()
    block = re.search(r"```python\n(.*?)```", page, re.S)
    assert block is not None and block.group(1) == code


def test_the_example_method_distils_through_the_cli(docs_on_path: None, tmp_path: Path) -> None:
    out = tmp_path / "set.pt"
    args = ["fit", "--model", "example_method.FixedNetDM", "--model.ipc", "2", "--model.network", "convnet_w32",
            f"--model.artifact_path={out}", "--data.dataset", "digits", "--data.batch_real", "16",
            "--trainer.max_steps", "3", "--trainer.accelerator", "cpu", "--trainer.logger", "false",
            "--trainer.enable_checkpointing", "false", "--trainer.enable_progress_bar", "false",
            f"--trainer.default_root_dir={tmp_path}"]
    main(args)
    distilled = DistilledSet.load(out)
    assert distilled.method == "FixedNetDM" and distilled.images.shape == (20, 1, 8, 8)
    assert distilled.hparams["network"] == "convnet_w32" and distilled.hparams["ipc"] == 2
    # the random baseline of the same seed is where the method started: the images moved from there
    main(["fit", "--model", "lightning_dd.methods.RandomSelection", "--model.ipc", "2",
          f"--model.artifact_path={tmp_path / 'start.pt'}", *args[args.index("--data.dataset"):]])
    start = DistilledSet.load(tmp_path / "start.pt")
    assert start.method == "random" and not torch.equal(start.images, distilled.images)
