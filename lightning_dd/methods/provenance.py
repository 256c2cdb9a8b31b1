"""What an artifact records about the run that made it (``DistilledSet.provenance``)."""

from __future__ import annotations

import platform
from typing import Any

import lightning as L
import torch

from lightning_dd import __version__
from lightning_dd.methods.hparams import plain_json

__all__ = ["provenance", "versions"]


def versions() -> dict[str, str]:
    """The versions that shape the numbers: this library, torch, lightning, python."""
    return {"lightning_dd": __version__, "torch": str(torch.__version__), "lightning": str(L.__version__),
            "python": platform.python_version()}


def provenance(module: Any) -> dict[str, Any]:
    """``iterations``, ``batch_real``, ``init_indices``, ``evaluation``, ``versions`` of a DistillationModule's run
    (``None`` where unknown: ``init="noise"``, a data source without a store, no in-run evaluator)."""
    evaluation = getattr(module, "evaluation", None)
    return {
        "iterations": int(module.iteration),
        "batch_real": module.data_meta.get("batch_real"),
        "init_indices": getattr(module, "init_indices", None),
        "evaluation": plain_json(evaluation) if evaluation else None,
        "versions": versions(),
    }
