"""What an artifact records about the run that made it (``DistilledSet.provenance``)."""

from __future__ import annotations

import platform
from typing import Any

import lightning as L
import torch

from lightning_dd import __version__
from lightning_dd.artifact import DistilledSet
from lightning_dd.methods.hparams import plain_json

__all__ = ["distilled_set_of", "provenance", "versions"]


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


def distilled_set_of(module: Any) -> DistilledSet:
    """A detached CPU snapshot of a DistillationModule's decoded (training-ready) synthetic set, described."""
    if not module.data_meta:
        raise RuntimeError("the dataset description is unknown: call trainer.fit (setup) first")
    meta = module.data_meta
    synthetic = module.synthetic
    with torch.no_grad():
        images, labels = synthetic.decode()
    hparams = plain_json(dict(module.hparams))
    if len(module.regularizers):  # not hyper-parameters (modules), yet they shape the images: record them
        hparams["regularizers"] = [plain_json(reg.describe()) for reg in module.attached_regularizers()]
    soft = synthetic.soft_labels
    return DistilledSet(
        images=images.detach().float().cpu().clone(),
        labels=labels.cpu().clone(),
        soft_labels=None if soft is None or synthetic.factor != 1 else soft.detach().float().cpu(),
        lr=None if synthetic.lr is None else float(synthetic.lr.detach()),
        dataset=meta["dataset"],
        class_names=tuple(meta["class_names"]),
        mean=tuple(meta["mean"]),
        std=tuple(meta["std"]),
        space=synthetic.space,
        zca=meta.get("zca"),
        factor=synthetic.factor,
        dsa_strategy=meta["dsa_strategy"],
        method=module.method_name,
        ipc=module.ipc,
        seed=module.seed,
        hparams=hparams,
        version=__version__,
        provenance=provenance(module),
    )
