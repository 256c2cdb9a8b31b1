"""Shared timing helper of the benchmark scripts (run as ``python benchmarks/<script>.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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
