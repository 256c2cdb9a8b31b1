"""Small shared builders for tests: quiet Trainers, tiny DM runs and MTT experts on the embedded digits dataset."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lightning_dd.data import RealDataModule
from lightning_dd.methods import DM
from lightning_dd.pretrained import EXPERT_RECIPE, train_experts


def quiet_trainer(root: Any, **kwargs: Any) -> L.Trainer:
    """A CPU Trainer without progress bars, summaries or default loggers, writing under ``root``."""
    defaults: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "use_distributed_sampler": False,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(root),
    }
    defaults.update(kwargs)
    return L.Trainer(**defaults)


def tiny_dm(ipc: int = 2, seed: int = 0, **kwargs: Any) -> DM:
    """DM on digits (1x8x8, 10 classes) with a narrow ConvNet, for fast tests."""
    defaults: dict[str, Any] = {
        "ipc": ipc,
        "num_classes": 10,
        "image_shape": (1, 8, 8),
        "seed": seed,
        "artifact_path": "",
        "optimizer": lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.5),
    }
    defaults.update(kwargs)
    return DM(**defaults)


def digits_data(batch_real: int = 16, seed: int = 0, iterations_per_epoch: int = 100) -> RealDataModule:
    return RealDataModule("digits", batch_real=batch_real, seed=seed, iterations_per_epoch=iterations_per_epoch)


def digits_experts(out: Path) -> Path:
    """Two MTT experts x 3 epochs on 20 digits images per class (normalised space), written into ``out``."""
    data = RealDataModule("digits")
    store = data.load_train()
    idx = torch.cat([i[:20] for i in store.indices_by_class])
    recipe = dataclasses.replace(EXPERT_RECIPE, epochs=3, batch_size=32, dsa_strategy=data.info.dsa_strategy)
    train_experts(data.encode(store.images[idx]), store.labels[idx], out, dataset="digits", num_classes=10,
                  mean=data.mean, std=data.std, num_experts=2, recipe=recipe, seed=0, log=lambda _: None)
    return out
