"""What a run may be started or resumed with: the budget, the precision, the checkpoint file, the resume policy.

Resume policy: a resumed run must continue the *same* distillation. It may change the budget (``trainer.max_steps``,
``max_epochs``, the callbacks that evaluate or log) and where outputs go (:data:`RESUME_MAY_CHANGE`); everything that
shapes the images -- the method and its hyper-parameters, the image optimiser's settings, the regularizers, the
dataset and its statistics, the real-data stream (checked by the data module) -- must equal the checkpoint's, and a
difference is an error naming both values (never a silent override either way).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lightning_dd.methods.hparams import plain_json

__all__ = [
    "DISTILLATION_PRECISIONS",
    "RESUME_MAY_CHANGE",
    "check_budget",
    "check_precision",
    "read_checkpoint",
    "resume_conflicts",
]

#: model arguments a resume may change (outputs only)
RESUME_MAY_CHANGE = ("artifact_path", "image_grid_every_n_steps")
#: Trainer precisions distillation runs under: the images stay float32 master parameters
DISTILLATION_PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
#: optimiser options that are implementation switches, not settings (may differ freely)
_OPTIMIZER_SWITCHES = {"params", "foreach", "fused", "capturable", "differentiable", "maximize", "initial_lr"}


def check_budget(trainer: L.Trainer) -> None:
    """Refuse a budget that runs no iteration (Lightning would exit 0 with no artifact and no message)."""
    for name, value in (("max_steps", trainer.max_steps), ("max_epochs", trainer.max_epochs),
                        ("limit_train_batches", trainer.limit_train_batches)):
        if value == 0:
            raise ValueError(f"trainer.{name}=0 runs no distillation iteration (nothing would be written); give "
                             f"max_steps >= 1 (iterations), or max_steps -1 with max_epochs >= 1")


def check_precision(trainer: L.Trainer) -> None:
    """Refuse ``*-true`` half precisions: they would store the synthetic images themselves in half precision."""
    precision = str(trainer.precision)
    if precision not in DISTILLATION_PRECISIONS:
        raise ValueError(
            f"trainer.precision={precision!r} is not supported for distillation (a '-true' half precision would "
            f"keep the synthetic images in half precision, where the small image updates vanish); allowed: "
            f"{', '.join(DISTILLATION_PRECISIONS)}"
        )


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a method's training checkpoint, or raise an error that says what the file is instead.

    Raises:
        FileNotFoundError / IsADirectoryError: no such file, or a directory.
        ValueError: an empty (0-byte) or truncated file, a distilled-set artifact, a file that is not a Lightning
            checkpoint, or a Lightning checkpoint not written by a lightning_dd method.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"ckpt_path {str(path)!r} is a directory; give a .ckpt file (e.g. one under "
                                "<log dir>/checkpoints/)")
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"ckpt_path {str(path)!r} is empty (0 bytes): its write was interrupted (the process was "
                         "killed while saving); resume from an earlier checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise ValueError(f"ckpt_path {str(path)!r} is truncated or not a checkpoint ({type(err).__name__}: {err}); "
                         "resume from an earlier checkpoint") from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f"ckpt_path {str(path)!r} holds a {type(checkpoint).__name__}, not a Lightning checkpoint")
    if checkpoint.get("format") == "lightning_dd.distilled_set":
        raise ValueError(f"ckpt_path {str(path)!r} is a distilled-set artifact, not a training checkpoint: resume "
                         "from a .ckpt under <log dir>/checkpoints/; evaluate an artifact with `lightning-dd "
                         "evaluate --distilled FILE`")
    missing = {"state_dict", "loops", "global_step"} - checkpoint.keys()
    if missing:
        raise ValueError(f"ckpt_path {str(path)!r} is not a Lightning training checkpoint (no {sorted(missing)})")
    if "lightning_dd" not in checkpoint:
        raise ValueError(f"ckpt_path {str(path)!r} was not written by a lightning_dd method (no 'lightning_dd' "
                         "state); resume from a checkpoint of a `lightning-dd fit` run")
    return checkpoint


def _optimizer_settings(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: plain_json(v) for k, v in g.items() if k not in _OPTIMIZER_SWITCHES} for g in groups]


def resume_conflicts(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"name: checkpoint A, this run B"`` for every resume-fixed setting that differs (see the module doc).

    Both dicts hold ``hparams`` (the method's saved hyper-parameters), ``method`` (class path), ``optimizer`` (the
    image optimiser's param-group settings), ``regularizers`` (class paths), ``data`` (dataset, class names, mean,
    std); a key missing from ``saved`` (an older checkpoint) is not compared.
    """
    conflicts = []
    if "method" in saved and saved["method"] != current["method"]:
        conflicts.append(f"model.class_path: checkpoint {saved['method']!r}, this run {current['method']!r}")
    old, new = plain_json(saved.get("hparams", {})), plain_json(current["hparams"])
    for name in sorted(old.keys() | new.keys()):
        if name.startswith("_") or name in RESUME_MAY_CHANGE or name not in old:
            continue
        if old[name] != new.get(name):
            conflicts.append(f"model.{name}: checkpoint {old[name]!r}, this run {new.get(name)!r}")
    if "optimizer" in saved:
        before, now = _optimizer_settings(saved["optimizer"]), _optimizer_settings(current["optimizer"])
        if before != now:
            conflicts.append(f"model.optimizer: checkpoint {before}, this run {now}")
    if "regularizers" in saved and plain_json(saved["regularizers"]) != plain_json(current["regularizers"]):
        conflicts.append(f"regularizers: checkpoint {saved['regularizers']}, this run {current['regularizers']}")
    old_data, new_data = plain_json(saved.get("data", {})), plain_json(current["data"])
    conflicts += [f"data.{name}: checkpoint {value!r}, this run {new_data.get(name)!r}"
                  for name, value in old_data.items() if value != new_data.get(name)]
    return conflicts
