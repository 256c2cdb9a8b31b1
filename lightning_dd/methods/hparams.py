"""Hyper-parameter plumbing of the methods: picklable optimiser factories and plain (JSON/YAML) values."""

from __future__ import annotations

import functools
import pickle
from typing import Any

import torch
from lightning.pytorch.cli import OptimizerCallable

__all__ = ["picklable_optimizer_factory", "plain_json", "plain_yaml"]


def picklable_optimizer_factory(factory: OptimizerCallable) -> OptimizerCallable:
    """``factory`` itself if it pickles, else an equivalent ``functools.partial(OptimizerClass, **defaults)``.

    Signature defaults are lambdas (LightningCLI renders them as ``class_path``/``init_args``), which cannot be
    pickled for ``ddp_spawn``; probing the factory once on a dummy tensor recovers the optimizer class and its
    constructor arguments (``Optimizer.defaults``).
    """
    try:
        pickle.dumps(factory)
        return factory
    except (pickle.PicklingError, AttributeError, TypeError):
        probe = factory([torch.nn.Parameter(torch.zeros(1))])
        return functools.partial(type(probe), **probe.defaults)


def plain_yaml(value: Any) -> Any:
    """Tuples (and tuples inside lists/dicts) as lists; everything else unchanged."""
    if isinstance(value, dict):
        return {k: plain_yaml(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_yaml(v) for v in value]
    return value


def plain_json(value: Any) -> Any:
    """Hyper-parameters reduced to JSON-like values (callables and objects become their repr)."""
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
