"""The decoded-tensor cache: fingerprints of source files and atomically written ``.pt`` / ``.json`` entries.

Decoding many small image files is slow, so decoded ``uint8`` splits are cached in ``$LIGHTNING_DD_CACHE`` (default
``~/.cache/lightning_dd/tensors/``) under a key that hashes the source files' count, total size and newest mtime plus
whatever else decides the result (absolute folder, class order, channels, size). Entries are written with
:func:`lightning_dd._atomic.atomic_write` (temporary file, fsync, ``os.replace``); an entry that cannot be read is
ignored and rebuilt; a failed write only warns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from lightning_dd._atomic import atomic_json_dump, atomic_torch_save
from lightning_dd.data.types import LabeledImages

__all__ = ["cached", "fingerprint", "load_json_entry", "store_json_entry", "tensor_cache_dir"]

log = logging.getLogger(__name__)

#: Bump when the layout of cached files or the decoding changes.
CACHE_VERSION = 1


def tensor_cache_dir() -> Path:
    """Folder of the decoded-tensor cache: ``$LIGHTNING_DD_CACHE`` or ``~/.cache/lightning_dd/tensors``."""
    env = os.environ.get("LIGHTNING_DD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lightning_dd" / "tensors"


def fingerprint(paths: Sequence[Path], **extra: object) -> str:
    """Cache key: a hash of the files' count, total size (bytes) and newest mtime (ns), plus ``extra``.

    Args:
        paths: the source files the cached value is built from.
        extra: everything else that decides the value (absolute folder, options); JSON-encoded, ``str`` fallback.

    Returns:
        40 hexadecimal characters.
    """
    total = 0
    newest = 0
    for p in paths:
        st = os.stat(p)
        total += st.st_size
        newest = max(newest, st.st_mtime_ns)
    material = {"version": CACHE_VERSION, "count": len(paths), "size": total, "mtime": newest, **extra}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:40]


def _load(key: str) -> LabeledImages | None:
    path = tensor_cache_dir() / f"{key}.pt"
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        return LabeledImages(
            images=obj["images"].contiguous(),
            labels=obj["labels"].contiguous(),
            class_names=tuple(str(c) for c in obj["class_names"]),
        )
    except Exception as err:  # any unreadable cache file is rebuilt
        log.warning("Ignoring unreadable tensor cache %s (%s); rebuilding it.", path, err)
        return None


def _store(key: str, data: LabeledImages) -> None:
    path = tensor_cache_dir() / f"{key}.pt"
    payload = {"images": data.images, "labels": data.labels, "class_names": list(data.class_names)}
    try:
        atomic_torch_save(payload, path)
    except OSError as err:
        warnings.warn(f"Could not write the tensor cache {path}: {err}", stacklevel=3)


def cached(key: str, build: Callable[[], LabeledImages]) -> LabeledImages:
    """``<cache>/<key>.pt`` if it is readable, else ``build()`` (stored under ``key`` before it is returned)."""
    hit = _load(key)
    if hit is not None:
        return hit
    data = build()
    _store(key, data)
    return data


def load_json_entry(key: str, suffix: str) -> Any | None:
    """The JSON value stored as ``<cache>/<key><suffix>``; ``None`` if absent or unreadable (with a warning log)."""
    path = tensor_cache_dir() / f"{key}{suffix}"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except Exception as err:
        log.warning("Ignoring unreadable cache entry %s (%s)", path, err)
        return None


def store_json_entry(key: str, suffix: str, value: Any) -> None:
    """Write ``value`` as JSON to ``<cache>/<key><suffix>`` atomically; a failed write only warns."""
    path = tensor_cache_dir() / f"{key}{suffix}"
    try:
        atomic_json_dump(value, path)
    except OSError as err:
        warnings.warn(f"Could not write the cache entry {path}: {err}", stacklevel=3)
