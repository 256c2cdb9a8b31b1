"""Evaluate a distilled artifact: N fresh students per architecture, each an ordinary ``Trainer.fit`` + ``test``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from torch import Tensor

from lightning_dd.artifact import DistilledSet
from lightning_dd.data.distilled import DistilledDataModule
from lightning_dd.evaluation.protocol import DEFAULT_STUDENT_EPOCHS, StudentRecipe, mean_std, student_progress
from lightning_dd.evaluation.student import StudentClassifier
from lightning_dd.networks import create_network


def evaluate_artifact(
    distilled: str | Path | DistilledSet,
    root: str | None = None,
    models: Sequence[str] = ("convnet",),
    runs: int = 5,
    epochs: int = DEFAULT_STUDENT_EPOCHS,
    seed: int = 0,
    batch_size: int | None = None,
    download: bool = False,
    trainer_kwargs: dict[str, Any] | None = None,
    dataset: str | None = None,
    test: tuple[Tensor, Tensor] | None = None,
    recipe: str = "reference",
) -> dict[str, Any]:
    """Train ``runs`` students of every architecture in ``models`` and return accuracies in percent.

    ``dataset``: when given, must be the artifact's (a guard for command lines). ``test``: your own test split
    ``(uint8 or [0, 1] float images (N, C, H, W), int64 labels (N,))`` instead of the registered dataset's.

    Returns:
        ``{"distilled", "dataset", "method", "ipc", "epochs", "recipe", "batch_size", "runs",
        "results": {model: {"mean", "std", "accs"}}}``
        where std is the population std over the runs.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    batch_size = StudentRecipe.named(recipe, epochs=epochs, batch_size=batch_size).batch_size  # checks the name
    data = DistilledDataModule(distilled if isinstance(distilled, DistilledSet) else str(distilled), root=root,
                               download=download, batch_size=batch_size, seed=seed, test=test)
    d = data.distilled
    if dataset is not None and dataset != d.dataset:
        raise ValueError(f"--data.dataset {dataset!r} is not the artifact's dataset {d.dataset!r}; leave it out "
                         "(evaluation uses the dataset the set was distilled from)")
    c, h, w = d.image_shape
    for name in models:  # fail fast on an unknown architecture, before any training
        create_network(name, c, d.num_classes, (h, w))
    data.setup("test")
    lr = d.lr if d.lr is not None else 0.01
    results: dict[str, Any] = {}
    show = bool((trainer_kwargs or {}).get("enable_progress_bar", True))
    bar = student_progress(len(models) * runs, d.method, epochs, show)
    for name in models:
        accs = []
        for run in range(runs):
            student = StudentClassifier(network=name, num_classes=d.num_classes, image_shape=d.image_shape,
                                        epochs=epochs, lr=lr, dsa_strategy=d.dsa_strategy, seed=seed * 1000 + run,
                                        recipe=recipe)
            data.seed = seed * 1000 + run
            trainer = L.Trainer(**_student_trainer_kwargs(epochs, trainer_kwargs))
            trainer.fit(student, datamodule=data)
            metrics = trainer.test(student, datamodule=data, verbose=False)
            accs.append(100.0 * float(metrics[0]["student/test_acc"]))
            bar.update()
        mean, std = mean_std(accs)
        results[name] = {"mean": round(mean, 4), "std": round(std, 4), "accs": [round(a, 4) for a in accs]}
    bar.close()
    return {
        "distilled": str(distilled) if not isinstance(distilled, DistilledSet) else None,
        "dataset": d.dataset,
        "method": d.method,
        "ipc": d.ipc,
        "epochs": epochs,
        "recipe": recipe,
        "batch_size": batch_size,
        "runs": runs,
        "results": results,
    }


def _student_trainer_kwargs(epochs: int, overrides: dict[str, Any] | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "accelerator": "auto",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
    }
    kwargs.update({k: v for k, v in (overrides or {}).items() if v is not None})
    kwargs["enable_progress_bar"] = False  # one bar over the students instead (evaluate_artifact)
    kwargs["max_epochs"] = epochs
    return kwargs
