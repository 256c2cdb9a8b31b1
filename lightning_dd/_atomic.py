"""Atomic file writes, output-path checks before the compute, and a fallback when the write fails after it.

:func:`atomic_write` writes a temporary file in the destination directory (``.<name>.<pid>.tmp``), fsyncs it, gives
it the mode an ordinary new file gets (``0o666`` minus the umask; ``mkstemp``'s is 0600) and moves it into place with
``os.replace``: a reader never sees a half-written artifact, image or result file, even if the process dies
mid-write. A temporary file left by a process that died (its pid is gone) is removed by the next write into the same
directory.

:func:`check_writable` is what a command calls at start for every output it will write, so that an unwritable path
fails before hours of compute; :func:`write_or_fallback` is what it calls at the end, so that the result of that
compute survives a path that became unwritable meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_json_dump", "atomic_torch_save", "atomic_write", "check_writable", "json_text",
           "write_or_fallback"]


def _umask() -> int:
    """The process umask (read by setting and restoring it: Python has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def _remove_stale_temps(directory: Path) -> None:
    """Remove ``.<name>.<pid>.tmp`` files in ``directory`` whose writing process no longer exists (killed
    mid-write: whatever file it was writing, its temporary file is garbage)."""
    for tmp in directory.glob(".*.tmp"):
        pid = tmp.name[: -len(".tmp")].rsplit(".", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` for a temporary file next to ``path``, then move it into place. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path.parent)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` atomically. Saved through a file object, so the zip's root folder is always ``archive`` (not
    the temporary file's name): the same content gives the same bytes."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    return atomic_write(path, write)


def json_text(obj: Any, indent: int | None = 2) -> str:
    """``obj`` as strict JSON: a NaN or infinite number raises a ``ValueError`` naming it (``NaN`` is not JSON)."""
    try:
        return json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError as err:
        raise ValueError(f"refusing to write a non-finite number (NaN or inf) as JSON: {obj!r}") from err


def atomic_json_dump(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented, strict JSON atomically."""
    text = json_text(obj) + "\n"

    def write(tmp: Path) -> None:
        tmp.write_text(text)

    return atomic_write(path, write)


def check_writable(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Raise a clear error now if ``path`` cannot be written as a file later; returns it as a ``Path``.

    Refused: an existing directory; a path under an existing file; a directory in which no file can be created
    (tested by creating and removing a probe file, which also catches read-only file systems and, for root, what
    ``os.access`` would wrongly allow). Missing parent directories are created (they would be at the end anyway).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"the {what} path {str(path)!r} is a directory; give a file path inside it")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"the {what} path {str(path)!r} lies under {str(parent)!r}, which is a "
                                         "file, not a directory")
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.probe.", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(f"the {what} path {str(path)!r} is not writable ({err.strerror or err}); "
                              "choose a writable location") from err
    return path  # an existing file is replaced by a rename in its (writable) directory, whatever its own mode


def write_or_fallback(path: str | os.PathLike[str], write: Callable[[Path], Path], what: str = "output") -> Path:
    """``write(path)``; if that fails with an ``OSError``, ``write`` to a fallback in the temp directory, warn
    where it went, and return the path actually written (the compute is never lost to a bad path)."""
    path = Path(path)
    try:
        return write(path)
    except OSError as err:
        fallback = Path(tempfile.gettempdir()) / f"lightning_dd-rescued-{os.getpid()}" / path.name
        written = write(fallback)
        warnings.warn(f"could not write the {what} to {str(path)!r} ({err}); saved it to {str(written)!r} instead",
                      stacklevel=2)
        return written
