"""Shared timing helper of the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch


def timed(step: Callable[..., Any], device: torch.device, *args: Any) -> float:
    """Wall seconds of ``step(*args)``, synchronising CUDA before and after so queued kernels are counted."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step(*args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


class IterationTimer(L.Callback):
    """Wall seconds of every training step (one distillation iteration), in :attr:`seconds`."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, *args: object) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args: object) -> None:
        self.seconds.append(time.perf_counter() - self._start)


class CycleTimer(IterationTimer):
    """Also the whole loop cycle, from one ``on_train_batch_end`` to the next (batch fetch and Lightning's hooks
    included), in :attr:`cycles`."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[float] = []

    def on_train_batch_end(self, *args: object) -> None:
        super().on_train_batch_end(*args)
        self.ends.append(time.perf_counter())

    @property
    def cycles(self) -> list[float]:
        return [b - a for a, b in itertools.pairwise(self.ends)]
