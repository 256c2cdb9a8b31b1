"""Runs that finish and resume exactly: DDP to the end, extending a finished run, Ctrl-C, output files.

The command-line runs go through the real entry point (``python -m lightning_dd``) in a subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lightning_dd.artifact import DistilledSet
from lightning_dd.cli import main
from tests.helpers import digits_data, quiet_trainer, tiny_dm

REPO = Path(__file__).resolve().parents[2]
#: a fast DM run on digits through the command line
FIT = ["fit", "--model", "DM", "--model.ipc", "1", "--data.batch_real", "4", "--trainer.accelerator", "cpu",
       "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def cli(args: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "lightning_dd", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=300, **kwargs)


def images(path: Path) -> torch.Tensor:
    return DistilledSet.load(path).images


# ------------------------------------------------------------------------------------------------ DDP


def test_ddp_spawn_fit_with_the_default_artifact_path_writes_one_artifact_equal_on_both_ranks(tmp_path: Path) -> None:
    probe = tmp_path / "ranks"
    config = tmp_path / "probe.yaml"
    config.write_text(f"trainer:\n  callbacks:\n    - class_path: tests.methods.rank_probe.SaveRankImages\n"
                      f"      init_args:\n        directory: {probe}\n")
    run = cli([*FIT, "--trainer.max_steps", "3", "--trainer.devices", "2", "--trainer.strategy", "ddp_spawn",
               "--config", str(config)], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    artifacts = sorted(tmp_path.rglob("*.pt"))
    written = [p for p in artifacts if p.parent != probe]
    assert [p.relative_to(tmp_path) for p in written] == [Path("lightning_logs/version_0/distilled.pt")]
    rank0, rank1 = torch.load(probe / "rank0.pt"), torch.load(probe / "rank1.pt")
    assert torch.equal(rank0, rank1)
    assert torch.equal(images(written[0]), rank0)


# ------------------------------------------------------------------------------------------------ resume


def _fit(root: Path, steps: int, ckpt_path: str | None = None, **kwargs: Any) -> Any:
    model = tiny_dm(ipc=2, artifact_path=kwargs.pop("artifact_path", ""))
    quiet_trainer(root, max_steps=steps, **kwargs).fit(model, digits_data(iterations_per_epoch=5),
                                                       ckpt_path=ckpt_path)
    return model


@pytest.mark.parametrize("first", [4, 5], ids=["mid_epoch", "at_epoch_end"])
def test_extending_a_finished_run_equals_the_longer_run(tmp_path: Path, first: int) -> None:
    straight = _fit(tmp_path / "straight", 12)
    _fit(tmp_path / "first", first, enable_checkpointing=True)
    (checkpoint,) = (tmp_path / "first" / "checkpoints").glob("*.ckpt")
    extended = _fit(tmp_path / "extended", 12, ckpt_path=str(checkpoint))
    assert torch.equal(extended.synthetic.images.detach(), straight.synthetic.images.detach())


def test_a_resume_may_change_the_artifact_path_and_writes_there(tmp_path: Path) -> None:
    _fit(tmp_path / "first", 2, enable_checkpointing=True, artifact_path=str(tmp_path / "first.pt"))
    (checkpoint,) = (tmp_path / "first" / "checkpoints").glob("*.ckpt")
    model = _fit(tmp_path / "second", 3, ckpt_path=str(checkpoint), artifact_path=str(tmp_path / "second.pt"))
    assert torch.equal(images(tmp_path / "second.pt"), model.synthetic.images.detach())


def test_a_resume_with_another_image_optimizer_is_refused(tmp_path: Path) -> None:
    _fit(tmp_path / "first", 2, enable_checkpointing=True)
    (checkpoint,) = (tmp_path / "first" / "checkpoints").glob("*.ckpt")
    model = tiny_dm(ipc=2, optimizer=lambda p: torch.optim.Adam(p, lr=0.1))
    with pytest.raises(ValueError, match=r"model.optimizer: checkpoint \[\{'lr': 1.0, 'momentum': 0.5"):
        quiet_trainer(tmp_path / "x", max_steps=3).fit(model, digits_data(iterations_per_epoch=5),
                                                        ckpt_path=str(checkpoint))


# ------------------------------------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_stops_after_the_iteration_writes_set_and_checkpoint_and_resumes_exactly(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [*FIT, "--trainer.max_steps", "1000000", "--model.image_grid_every_n_steps", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "lightning_dd", *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    grid = tmp_path / "lightning_logs" / "version_0" / "images" / "iteration_000003.png"
    deadline = time.monotonic() + 120
    while not grid.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Ctrl-C: stopping after this iteration" in err
    log = out + err
    stopped = int(log.split("interrupted after iteration ")[1].split(":")[0])
    assert stopped >= 3
    run_dir = tmp_path / "lightning_logs" / "version_0"
    checkpoint = run_dir / "checkpoints" / f"interrupted-step={stopped}.ckpt"
    assert checkpoint.is_file() and f"--ckpt_path {checkpoint}" in log
    assert (run_dir / "distilled.pt").is_file() and "distilled set written to" in log
    # the checkpoint continues exactly: resumed to stopped + 2 equals an uninterrupted run of stopped + 2
    target = str(stopped + 2)
    resumed = cli([*args, "--trainer.max_steps", target, "--ckpt_path", str(checkpoint), "--model.artifact_path",
                   str(tmp_path / "resumed.pt")], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = cli([*args, "--trainer.max_steps", target, "--model.artifact_path", str(tmp_path / "straight.pt")],
                   tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert torch.equal(images(tmp_path / "resumed.pt"), images(tmp_path / "straight.pt"))


def test_ctrl_c_under_ddp_spawn_saves_once_and_exits_130(tmp_path: Path) -> None:
    """The terminal sends SIGINT to the whole process group: the parent and both ranks."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [*FIT, "--trainer.max_steps", "1000000", "--model.image_grid_every_n_steps", "1", "--trainer.devices", "2",
            "--trainer.strategy", "ddp_spawn"]
    proc = subprocess.Popen([sys.executable, "-m", "lightning_dd", *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    grid = tmp_path / "lightning_logs" / "version_0" / "images" / "iteration_000003.png"
    deadline = time.monotonic() + 120
    while not grid.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert out.count("Ctrl-C: stopping after this iteration") == 1 and "Detected KeyboardInterrupt" not in out
    stopped = int(out.split("interrupted after iteration ")[1].split(":")[0])
    run_dir = tmp_path / "lightning_logs" / "version_0"
    assert (run_dir / "checkpoints" / f"interrupted-step={stopped}.ckpt").is_file()
    assert [p.name for p in run_dir.glob("*.pt")] == ["distilled.pt"]


# ------------------------------------------------------------------------------------------------ output files


class BreakDirectory(Callback):
    """At the end of training, before the export, turn the artifact's folder into a file (it "vanished")."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for child in self.directory.iterdir():
            child.unlink()
        self.directory.rmdir()
        self.directory.write_text("not a folder any more\n")


def test_a_write_that_fails_after_the_compute_goes_to_a_fallback_and_says_where(tmp_path: Path) -> None:
    out = tmp_path / "out"
    model = tiny_dm(ipc=1, artifact_path=str(out / "distilled.pt"))
    with pytest.warns(UserWarning, match=r"could not write the distilled set to .*out/distilled.pt.*saved it to") as w:
        quiet_trainer(tmp_path, max_steps=2, callbacks=[BreakDirectory(out)]).fit(model, digits_data())
    message = next(str(x.message) for x in w if "saved it to" in str(x.message))
    rescued = Path(message.split("saved it to ")[1].split("'")[1])
    assert rescued == model.exported_path and rescued.parent != out
    assert torch.equal(images(rescued), model.synthetic.images.detach())


def test_same_seed_gives_byte_identical_artifacts_with_the_umask_mode_and_the_grid_first(tmp_path: Path) -> None:
    a = tmp_path / "out" / "distilled.pt"  # the same path twice: the path is recorded in the artifact
    previous = os.umask(0o027)
    try:
        _fit(tmp_path / "first", 2, artifact_path=str(a))
        first = a.read_bytes()
        _fit(tmp_path / "second", 2, artifact_path=str(a))
    finally:
        os.umask(previous)
    assert a.read_bytes() == first
    assert (a.stat().st_mode & 0o777) == 0o640
    assert (a.with_suffix(".png").stat().st_mode & 0o777) == 0o640
    assert a.with_suffix(".png").stat().st_mtime_ns <= a.stat().st_mtime_ns  # PNG first, then the artifact


def test_a_dead_writers_temp_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "distilled.pt"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".distilled.pt.{int(dead.stdout)}.tmp"  # its writer was killed mid-write
    alive = tmp_path / f".distilled.pt.{os.getppid()}.tmp"  # another live process may still be writing this one
    stale_grid = tmp_path / f".distilled.png.{int(dead.stdout)}.tmp"  # the grid it was writing before
    stale.write_bytes(b"PK half")
    stale_grid.write_bytes(b"\x89PNG half")
    alive.write_bytes(b"PK busy")
    _fit(tmp_path / "run", 1, artifact_path=str(path))
    assert path.is_file() and not stale.exists() and not stale_grid.exists() and alive.exists()


def test_max_steps_zero_is_refused_before_anything_is_written(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings(), pytest.raises(SystemExit) as info:
        warnings.simplefilter("ignore")
        main([*FIT, "--trainer.max_steps", "0", "--trainer.default_root_dir", str(tmp_path)])
    assert info.value.code == 2 and "trainer.max_steps=0" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.ckpt"))


def test_load_from_checkpoint_outside_fit_restores_the_module(tmp_path: Path) -> None:
    trained = _fit(tmp_path / "first", 2, enable_checkpointing=True)
    (checkpoint,) = (tmp_path / "first" / "checkpoints").glob("*.ckpt")
    loaded = type(trained).load_from_checkpoint(checkpoint)
    assert torch.equal(loaded.synthetic.images.detach(), trained.synthetic.images.detach())
    assert loaded.distilled_set().dataset == "digits"


def test_the_command_line_artifact_path_wins_on_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LightningCLI would replace --model.* given with --ckpt_path by the checkpoint's values; ours does not."""
    base = [*FIT, "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path / "run")]
    monkeypatch.setattr(sys, "argv", ["lightning-dd"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main([*base, "--trainer.max_steps", "2", "--model.artifact_path", str(tmp_path / "a.pt")])
        (checkpoint,) = (tmp_path / "run" / "checkpoints").glob("*.ckpt")
        main([*base, "--trainer.max_steps", "3", "--model.artifact_path", str(tmp_path / "b.pt"), "--ckpt_path",
              str(checkpoint)])
    assert (tmp_path / "b.pt").is_file()
    assert DistilledSet.load(tmp_path / "b.pt").hparams["artifact_path"] == str(tmp_path / "b.pt")
