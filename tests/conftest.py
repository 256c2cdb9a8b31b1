"""Suite-wide fixtures: no process group or cache leaks between tests; a tiny real proxy pool (CMI / IID tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch.distributed as dist

from lightning_dd.pretrained import ProxyPool
from tests.regularizers.pools import digits_pool


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


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> ProxyPool:
    """The pool as returned by ``pretrain_proxies`` (in memory)."""
    with pytest.MonkeyPatch.context() as mp:  # module scope: keep decoded-image caches out of the user's cache
        mp.setenv("LIGHTNING_DD_CACHE", str(tmp_path_factory.mktemp("pool-cache")))
        return digits_pool()


@pytest.fixture(scope="module")
def pool_path(pool: ProxyPool, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same pool written to a file (what configs and the CLI take)."""
    return pool.save(tmp_path_factory.mktemp("pool") / "digits_convnet.pt")
