"""A progress bar that counts distillation iterations (not Lightning's epochs of the real-batch stream), on stderr."""

from __future__ import annotations

import sys
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

__all__ = ["DistillationProgressBar"]


class DistillationProgressBar(TQDMProgressBar):
    """One bar for the whole run: ``distilling DM: 120/400 [00:08<00:19, 14 it/s, train/loss=0.84]``.

    Lightning's default bar restarts at every epoch of the real-batch stream, which means nothing to a distillation
    run, and writes to stdout, where the results go. This one counts the module's completed iterations towards
    ``trainer.max_steps / image_steps_per_iteration`` (when set), writes to stderr and is closed when the run ends,
    before the final results are printed.
    """

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(desc="distilling", position=2 * self.process_position, disable=self.is_disabled, leave=True,
                    dynamic_ncols=True, file=sys.stderr, smoothing=0, bar_format=self.BAR_FORMAT)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_progress_bar = self.init_train_tqdm()
        steps = max(1, int(getattr(pl_module, "image_steps_per_iteration", 1)))  # image steps per iteration
        self.train_progress_bar.reset(total=-(-trainer.max_steps // steps) if trainer.max_steps > 0 else None)
        done = int(getattr(pl_module, "iteration", 0))  # a resumed run starts where its checkpoint was
        self.train_progress_bar.initial = done
        self.train_progress_bar.n = done
        self.train_progress_bar.set_description(f"distilling {getattr(pl_module, 'method_name', '')}".rstrip())

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        """Nothing: the bar spans the epochs."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        bar = self.train_progress_bar
        n = int(getattr(pl_module, "iteration", trainer.global_step))
        if bar is not None and self._should_update(n, bar.total):
            bar.n = n
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps and bar is not None:
            bar.close()  # before the callbacks' end-of-run output

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Nothing: the bar spans the epochs."""
