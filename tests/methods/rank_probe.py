"""A callback for multi-process tests, loaded by class path: every rank saves its synthetic images at the end."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


class SaveRankImages(Callback):
    """Writes ``<directory>/rank<r>.pt`` (the module's synthetic images on rank ``r``) at the end of ``fit``."""

    def __init__(self, directory: str) -> None:
        super().__init__()
        self.directory = directory

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        images = pl_module.synthetic.images.detach().cpu()  # type: ignore[union-attr]
        Path(self.directory).mkdir(parents=True, exist_ok=True)
        torch.save(images, Path(self.directory) / f"rank{trainer.global_rank}.pt")
