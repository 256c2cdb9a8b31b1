"""``StudentClassifier`` + ``DistilledDataModule`` under a real Trainer, and ``evaluate_artifact``."""

from __future__ import annotations

import statistics
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lightning_dd.artifact import DistilledSet
from lightning_dd.data.distilled import DistilledDataModule
from lightning_dd.evaluation import StudentClassifier, evaluate_artifact
from tests.helpers import quiet_trainer


class LearningRates(Callback):
    """Records the optimizer's lr at the start of every training epoch (and whether any fit started)."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.fits = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fits += 1

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_student_trainer_beats_chance_and_decays_lr_at_half(tmp_path: Path, digits_ipc10: DistilledSet) -> None:
    epochs = 6
    data = DistilledDataModule(digits_ipc10, batch_size=25, seed=0)
    assert data.num_classes == 10 and data.image_shape == (1, 8, 8)
    student = StudentClassifier(
        network="mlp", num_classes=10, image_shape=(1, 8, 8), epochs=epochs, lr=0.05, dsa_strategy="none", seed=0
    )
    lrs = LearningRates()
    trainer = quiet_trainer(tmp_path, max_epochs=epochs, callbacks=[lrs], limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(student, datamodule=data)
    assert trainer.global_step == epochs * 4  # 100 images, batch 25
    assert lrs.lrs == pytest.approx([0.05] * 3 + [0.005] * 3)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.005)  # decayed once only
    acc = trainer.test(student, datamodule=data, verbose=False)[0]["student/test_acc"]
    assert acc > 0.5  # chance is 0.1


def test_student_init_is_seeded() -> None:
    a = StudentClassifier(network="convnet_w32", num_classes=10, image_shape=(1, 8, 8), seed=3)
    b = StudentClassifier(network="convnet_w32", num_classes=10, image_shape=(1, 8, 8), seed=3)
    c = StudentClassifier(network="convnet_w32", num_classes=10, image_shape=(1, 8, 8), seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_distilled_datamodule_batches(tmp_path: Path, digits_ipc10: DistilledSet, digits_test) -> None:
    path = digits_ipc10.save(tmp_path / "d.pt")
    soft = torch.randn(100, 10)
    data = DistilledDataModule(str(path), batch_size=32, seed=1)
    batches = list(data.train_dataloader())
    assert [b[0].shape[0] for b in batches] == [32, 32, 32, 4]
    assert len(batches[0]) == 2
    seen = torch.cat([b[1] for b in batches]).sort().values
    assert torch.equal(seen, digits_ipc10.labels.sort().values)
    again = list(DistilledDataModule(str(path), batch_size=32, seed=1).train_dataloader())
    assert all(torch.equal(x[0], y[0]) for x, y in zip(batches, again, strict=True))
    with_soft = DistilledDataModule(DistilledSet(**{**digits_ipc10.__dict__, "soft_labels": soft}), batch_size=100)
    (batch,) = list(with_soft.train_dataloader())
    assert len(batch) == 3 and batch[2].shape == (100, 10)
    images, labels = data.test_tensors()
    assert torch.equal(images, digits_test[0]) and torch.equal(labels, digits_test[1])
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        DistilledDataModule(digits_ipc10, batch_size=0)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        DistilledDataModule(str(tmp_path / "missing.pt"))


def test_evaluate_artifact_returns_documented_dict(tmp_path: Path, digits_ipc10: DistilledSet) -> None:
    path = digits_ipc10.save(tmp_path / "d.pt")
    result = evaluate_artifact(
        path,
        models=("mlp", "convnet_w32"),
        runs=2,
        epochs=3,
        batch_size=20,
        trainer_kwargs={"accelerator": "cpu", "default_root_dir": str(tmp_path)},
    )
    assert set(result) == {"distilled", "dataset", "method", "ipc", "epochs", "recipe", "batch_size", "runs", "results"}
    assert result["distilled"] == str(path)
    assert (result["dataset"], result["method"], result["ipc"], result["epochs"], result["runs"]) == (
        "digits",
        "random",
        10,
        3,
        2,
    )
    assert list(result["results"]) == ["mlp", "convnet_w32"]
    for stats in result["results"].values():
        accs = stats["accs"]
        assert len(accs) == 2 and all(0.0 <= a <= 100.0 for a in accs)
        assert stats["mean"] == pytest.approx(statistics.fmean(accs), abs=1e-3)
        assert stats["std"] == pytest.approx(statistics.pstdev(accs), abs=1e-3)
    mlp = result["results"]["mlp"]["accs"]
    assert mlp[0] != mlp[1], "each run must be a different student"
    again = evaluate_artifact(
        path,
        models=("mlp",),
        runs=1,
        epochs=3,
        batch_size=20,
        trainer_kwargs={"accelerator": "cpu", "default_root_dir": str(tmp_path)},
    )
    assert again["results"]["mlp"]["accs"] == mlp[:1]  # seeded: the same first student


def test_evaluate_artifact_unknown_model_fails_before_training(tmp_path: Path, digits_ipc10: DistilledSet) -> None:
    probe = LearningRates()
    with pytest.raises(ValueError, match="unknown network 'resnet_nope'"):
        evaluate_artifact(
            digits_ipc10,
            models=("mlp", "resnet_nope"),
            runs=1,
            epochs=1,
            trainer_kwargs={"callbacks": [probe], "default_root_dir": str(tmp_path)},
        )
    assert probe.fits == 0
    with pytest.raises(ValueError, match="runs must be >= 1, got 0"):
        evaluate_artifact(digits_ipc10, runs=0)
