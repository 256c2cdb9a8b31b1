"""``StudentClassifier``: the evaluation protocol as a LightningModule, trained by an ordinary Trainer.

Devices and precision are the Trainer's business (``--trainer.devices 4 --trainer.precision bf16-mixed``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torchmetrics
from torch import Tensor

from lightning_dd.evaluation.protocol import StudentRecipe, student_loss
from lightning_dd.networks import create_network
from lightning_dd.seeding import STREAM_EVAL, make_generator
from lightning_dd.training import cutmix


class StudentClassifier(L.LightningModule):
    """A fresh zoo network trained with the distilled-set protocol (SGD, lr x0.1 at half, per-sample DSA).

    Args:
        network: zoo name (``lightning_dd.networks.NETWORK_NAMES``).
        num_classes: number of classes.
        image_shape: ``(C, H, W)``.
        epochs: planned epochs (positions the lr decay at ``epochs // 2``; give the Trainer the same ``max_epochs``).
        lr, momentum, weight_decay: SGD settings.
        dsa_strategy: per-sample DSA at train time (``"none"`` disables it).
        seed: fixes the network initialisation and the augmentation stream (per rank).
        recipe: ``"reference"`` or ``"idc"`` (:data:`~lightning_dd.evaluation.protocol.STUDENT_RECIPES`: IDC's
            schedule, augmentation and CutMix; the batch size is the data module's).
    """

    def __init__(
        self,
        network: str = "convnet",
        num_classes: int = 10,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        epochs: int = 1000,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        dsa_strategy: str = "color_crop_cutout_flip_scale_rotate",
        seed: int = 0,
        recipe: str = "reference",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.seed = int(seed)
        self.recipe = StudentRecipe.named(recipe, default_strategy=dsa_strategy, epochs=epochs, lr=lr,
                                          momentum=momentum, weight_decay=weight_decay)
        c, h, w = image_shape
        self.net = create_network(network, c, num_classes, (h, w), generator=make_generator(seed, STREAM_EVAL))
        self.augment = self.recipe.augmenter()
        self.val_accuracy = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
        self.test_accuracy = torchmetrics.Accuracy(task="multiclass", num_classes=num_classes)
        self._generator: torch.Generator | None = None

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def on_fit_start(self) -> None:
        # per-rank augmentation stream, independent of the global RNG
        self._generator = make_generator(self.seed, STREAM_EVAL, self.global_rank, 1)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        x, y = batch[0], batch[1]
        soft = batch[2] if len(batch) > 2 else None
        assert self._generator is not None
        if not self.augment.is_identity:
            x = self.augment(x, self._generator)
        mixed = None
        if self.recipe.cutmix_prob and float(torch.rand(1, generator=self._generator)) < self.recipe.cutmix_prob:
            x, mixed = cutmix(x, self._generator)
        logits = self(x)
        loss = student_loss(logits, y, soft)
        if mixed is not None:
            partner, kept = mixed
            loss = loss * kept + student_loss(logits, y[partner.to(y.device)]) * (1 - kept)
        self.log("student/train_loss", loss, prog_bar=True, batch_size=x.shape[0])
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.val_accuracy(self(x), y)
        self.log("student/val_acc", self.val_accuracy, batch_size=x.shape[0])

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        self.test_accuracy(self(x), y)
        self.log("student/test_acc", self.test_accuracy, batch_size=x.shape[0])

    def configure_optimizers(self) -> Any:
        optimizer = self.recipe.optimizer(self.parameters())
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.recipe.scheduler(optimizer),
                                                          "interval": "epoch"}}
