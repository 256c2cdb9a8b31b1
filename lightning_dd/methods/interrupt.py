"""Ctrl-C during a distillation: finish the running iteration, then write the set and a checkpoint, and say where.

Lightning's own handling of ``KeyboardInterrupt`` aborts wherever the signal lands and saves nothing. While a
``DistillationModule`` trains, :class:`GracefulInterrupt` (returned by every method's ``configure_callbacks``)
replaces the SIGINT handler: the first Ctrl-C asks the loop to stop at the end of the running iteration, so the
images, generators and data position are those of a completed iteration; ``fit`` then ends normally, the export
callback writes the artifact, and this callback writes ``<checkpoint dir>/interrupted-step=N.ckpt`` from which
``--ckpt_path`` continues exactly. A second Ctrl-C aborts at once (Lightning's handling, nothing saved). The
``lightning-dd`` command exits with status 130 after an interrupted run. Under ``ddp_spawn`` the training runs in
child processes; the command's parent process holds an announce-free instance meanwhile, so that the Ctrl-C it also
receives waits for the children's save instead of tearing the run down.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from lightning_dd.methods.export import run_dir

__all__ = ["GracefulInterrupt"]


class GracefulInterrupt(Callback):
    """Stop at the end of the running iteration on Ctrl-C; write a checkpoint (and, via the export, the artifact).

    The iteration the run stopped after is the module's ``interrupted_at`` (``None`` if it was not interrupted;
    the evaluator and the command line read it there).

    Attributes:
        checkpoint_path: the checkpoint written on interrupt.
    """

    def __init__(self, announce: bool = True) -> None:
        super().__init__()
        self.announce = announce
        self.checkpoint_path: Path | None = None
        self._requested = False
        self._previous: Any = None
        self._installed = False
        self._checkpoint_dir: Path | None = None
        self._speaks = True  # rank 0 only, once the rank is known

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            callback = trainer.checkpoint_callback
            dirpath = getattr(callback, "dirpath", None)
            self._checkpoint_dir = Path(dirpath) if dirpath else run_dir(trainer) / "checkpoints"

    def request_stop(self) -> None:
        """What the first Ctrl-C does (callable from code too): stop after the running iteration."""
        self._requested = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._requested:  # the second Ctrl-C: abort now, as without this callback
            self.restore()
            raise KeyboardInterrupt
        self.request_stop()
        if self.announce and self._speaks:
            print("\n[lightning_dd] Ctrl-C: stopping after this iteration and saving the set and a checkpoint "
                  "(Ctrl-C again aborts without saving)", file=sys.stderr, flush=True)

    @property
    def requested(self) -> bool:
        """Whether a Ctrl-C arrived since :meth:`install`."""
        return self._requested

    def install(self) -> None:
        """Take over SIGINT (main thread only; elsewhere Python delivers no signals, so nothing to do)."""
        self._requested = False
        if threading.current_thread() is threading.main_thread() and not self._installed:
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True

    def restore(self) -> None:
        """Give SIGINT back to the handler that had it before :meth:`install`."""
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._speaks = trainer.is_global_zero
        pl_module.interrupted_at = None  # type: ignore[assignment]  # a module fitted again after an interrupted fit
        self.install()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        requested = self._requested
        if trainer.world_size > 1:  # every rank stops after the same iteration
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            trainer.should_stop = True
            pl_module.interrupted_at = int(getattr(pl_module, "iteration", trainer.global_step))  # type: ignore[assignment]

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.restore()
        stopped = getattr(pl_module, "interrupted_at", None)
        if stopped is None:
            return
        assert self._checkpoint_dir is not None  # set in setup
        path = self._checkpoint_dir / f"interrupted-step={trainer.global_step}.ckpt"
        trainer.save_checkpoint(path)  # every rank (rank 0 writes)
        self.checkpoint_path = path
        rank_zero_info(f"[lightning_dd] interrupted after iteration {stopped}: checkpoint written to "
                       f"{path}; continue with the same command and --ckpt_path {path}")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.restore()

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.restore()
