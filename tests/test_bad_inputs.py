"""Every row of ``tests/bad_inputs.py`` through the real entry point: exit status 2, one message, no traceback."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import pytest
import torch

from lightning_dd.artifact import DistilledSet
from lightning_dd.cli import main
from tests.bad_inputs import BAD_INPUTS, FIT
from tests.fixtures import write_image_folder
from tests.regularizers.pools import digits_pool

DIGITS_NAMES = tuple(str(c) for c in range(10))


def _run(argv: list[str]) -> None:
    saved = sys.argv
    sys.argv = ["lightning-dd", *argv]  # as the shell would (LightningCLI warns when args and sys.argv differ)
    try:
        main(argv)
    finally:
        sys.argv = saved


def fill(text: str, files: dict[str, str]) -> str:
    """``text`` with its ``{name}`` placeholders replaced (messages hold other braces, so not ``str.format``)."""
    for name, value in files.items():
        text = text.replace("{" + name + "}", value)
    return text


def _fit_checkpoint(tmp: Path) -> Path:
    """A finished 2-step DM run on digits with its end checkpoint (the RESUME rows resume it)."""
    args = [a.replace("{tmp}", str(tmp)) for a in FIT]
    _run([*args, "--trainer.max_steps", "2", "--trainer.enable_checkpointing", "true", "--model.optimizer",
          "torch.optim.SGD", "--model.optimizer.lr", "1.0", "--model.artifact_path", str(tmp / "artifact.pt")])
    (ckpt,) = (tmp / "runs" / "checkpoints").glob("*.ckpt")
    return ckpt


def _unchecked_artifact(good: DistilledSet, path: Path, images: torch.Tensor) -> Path:
    """An artifact file with ``images`` written around the checks (as a broken tool would)."""
    d = good.to_dict()
    d["images"] = images
    torch.save(d, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("bad_inputs")
    ckpt = _fit_checkpoint(tmp)
    artifact = tmp / "artifact.pt"
    good = DistilledSet.load(artifact)
    nan = good.images.clone()
    nan.view(-1)[:8] = float("nan")
    inf = good.images.clone()
    inf.view(-1)[3] = float("inf")
    (tmp / "file").write_text("an ordinary file\n")
    (tmp / "empty.ckpt").write_bytes(b"")
    data = ckpt.read_bytes()
    (tmp / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (tmp / "garbage.bin").write_bytes(bytes(range(256)) * 4)
    names = ["cat", "dog", "fox"]
    write_image_folder(tmp / "folder", names, train_per_class=4, seed=0)
    write_image_folder(tmp / "same_names", names, train_per_class=4, seed=1)
    write_image_folder(tmp / "small", names, train_per_class=4, size=(4, 4), seed=0)
    write_image_folder(tmp / "digits_folder", DIGITS_NAMES, train_per_class=5, channels=1, seed=0)
    folder_artifact = tmp / "folder_artifact.pt"
    _run([a.replace("{tmp}", str(tmp)) for a in FIT] + [
        "--model", "RandomSelection", "--model.ipc", "1", "--data.dataset", "image_folder", "--data.root",
        str(tmp / "folder"), "--model.artifact_path", str(folder_artifact)])
    pool = digits_pool(num_models=1, epochs=1).save(tmp / "pool.pt")
    return {
        "tmp": str(tmp), "file": str(tmp / "file"), "artifact": str(artifact), "ckpt": str(ckpt),
        "empty_ckpt": str(tmp / "empty.ckpt"), "truncated_ckpt": str(tmp / "truncated.ckpt"),
        "garbage": str(tmp / "garbage.bin"),
        "nan_artifact": str(_unchecked_artifact(good, tmp / "nan.pt", nan)),
        "inf_artifact": str(_unchecked_artifact(good, tmp / "inf.pt", inf)),
        "folder": str(tmp / "folder"), "same_names_folder": str(tmp / "same_names"),
        "small_folder": str(tmp / "small"), "digits_folder": str(tmp / "digits_folder"),
        "folder_artifact": str(folder_artifact), "pool": str(pool),
    }


def test_the_table_names_each_case_once() -> None:
    ids = [row["id"] for row in BAD_INPUTS]
    assert len(ids) == len(set(ids)) and len(ids) >= 50


@pytest.mark.parametrize("row", BAD_INPUTS, ids=[str(row["id"]) for row in BAD_INPUTS])
def test_bad_input_gives_one_clear_message(row: dict[str, object], files: dict[str, str],
                                           capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # anything a command writes by default lands here
    args = [fill(str(a), files) for a in row["args"]]  # type: ignore[attr-defined]
    runs = Path(files["tmp"]) / "runs"
    before = sorted(p.name for p in runs.rglob("*")) if runs.exists() else []
    with pytest.raises(SystemExit) as info:
        _run(args)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert fill(str(row["message"]), files) in err, err
    assert "Traceback" not in err
    assert err.count(": error: ") == 1
    # nothing was trained or written by the failed command
    assert (sorted(p.name for p in runs.rglob("*")) if runs.exists() else []) == before
    shutil.rmtree(tmp_path / "lightning_logs", ignore_errors=True)


def test_debug_variable_shows_the_traceback(files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_DD_DEBUG", "1")
    with pytest.raises(ValueError, match="max_steps=0"):
        _run([fill(a, files) for a in FIT] + ["--trainer.max_steps", "0"])


def test_float64_images_are_stored_as_float32(files: dict[str, str]) -> None:
    good = DistilledSet.load(files["artifact"])
    converted = dataclasses.replace(good, images=good.images.double())
    assert converted.images.dtype == torch.float32 and torch.equal(converted.images, good.images)
    with pytest.raises(ValueError, match="images must be a floating-point tensor"):
        dataclasses.replace(good, images=good.images.to(torch.uint8))
