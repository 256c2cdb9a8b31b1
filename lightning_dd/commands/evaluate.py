"""``lightning-dd evaluate``: fresh students on an artifact, mean and std of their test accuracy."""

from __future__ import annotations

from typing import Any, Literal

from lightning_dd._atomic import atomic_json_dump, check_writable, write_or_fallback
from lightning_dd.commands.options import DataOptions, TrainerOptions
from lightning_dd.evaluation.protocol import DEFAULT_STUDENT_EPOCHS
from lightning_dd.evaluation.run import evaluate_artifact

__all__ = ["evaluate"]


def evaluate(
    distilled: str,
    data: DataOptions = DataOptions(),
    trainer: TrainerOptions = TrainerOptions(),
    models: list[str] | str | None = None,
    runs: int = 5,
    epochs: int = DEFAULT_STUDENT_EPOCHS,
    batch_size: int | None = None,
    seed: int = 0,
    output: str | None = None,
    recipe: Literal["reference", "idc"] = "reference",
) -> dict[str, Any]:
    """Train fresh students on a distilled set and report their test accuracy (one JSON line on stdout).

    Args:
        distilled: the artifact written by ``lightning-dd fit`` (``distilled.pt``).
        data: where the real test split is (``--data.root``); the dataset is the artifact's.
        trainer: where the students train.
        models: student architectures: one name or a list, e.g. ``[convnet, resnet18]`` (default ``convnet``).
        runs: students per architecture.
        epochs: student training epochs (published protocol: 1000; reduced CPU runs use 300).
        batch_size: student batch size (default: the recipe's, 256 / IDC 64).
        seed: seed of the students (their init, data order and augmentation).
        output: also write the JSON result to this file.
        recipe: the students' recipe: ``reference`` (DC/DSA/DM ``evaluate_synset``) or ``idc`` (IDC's ``train.py``:
            batch 64, lr x0.2 at 2/3 and 5/6 of the epochs, IDC's augmentation, CutMix p 0.5); the result names it.
    """
    if output:
        check_writable(output, "--output")  # now, not after the students trained
    names = [models] if isinstance(models, str) else (models or ["convnet"])
    result = evaluate_artifact(distilled, root=data.root, download=data.download, models=names,
                               runs=runs, epochs=epochs, seed=seed, batch_size=batch_size,
                               trainer_kwargs=vars(trainer).copy(), dataset=data.dataset, recipe=recipe)
    if output:
        write_or_fallback(output, lambda p: atomic_json_dump(result, p), "evaluation result")
    return result
