"""Suite-wide fixtures: no process group or cache leaks between tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch.distributed as dist


@pytest.fixture(autouse=True)
def _teardown_process_group() -> Iterator[None]:
    yield
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@pytest.fixture(autouse=True)
def _isolated_tensor_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Decoded-image caches go to the test's own folder, never the user's cache; returns that folder."""
    cache = tmp_path / "tensor-cache"
    monkeypatch.setenv("LIGHTNING_DD_CACHE", str(cache))
    return cache
