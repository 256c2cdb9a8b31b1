"""A tiny real proxy pool on the embedded digits dataset, trained once per test module (tests/regularizers/pools.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightning_dd.pretrained import ProxyPool
from tests.regularizers.pools import digits_pool


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
