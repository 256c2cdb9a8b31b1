"""Fixtures of the tests/data suite: an isolated decoded-tensor cache per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_tensor_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point $LIGHTNING_DD_CACHE at a fresh folder so no test reads or writes the user's cache."""
    cache = tmp_path / "tensor-cache"
    monkeypatch.setenv("LIGHTNING_DD_CACHE", str(cache))
    return cache
