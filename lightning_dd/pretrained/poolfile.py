"""The one file format base of pretrained helpers: proxy pools (CMI/IID) and, later, MTT expert buffers.

A pool file is ONE ``torch.save`` dict, read back with ``torch.load(weights_only=True)`` (plain containers and
tensors only, nothing executable)::

    {"format": "<cls.format_name>", "format_version": <int>,
     "network": "<zoo name>", "dataset": "<name>", "image_shape": [C, H, W], "num_classes": K,
     "mean": [...], "std": [...], "space": "normalized" | "pixels" | "zca",
     "info": {...plain values: recipe, seed, accuracies...},
     "<cls.payload_key>": [entry, entry, ...]}            # e.g. "state_dicts": K network state dicts

The header records what the payload was made for (dataset, resolution, classes, normalisation, image space), so a
consumer can refuse a pool made for other data (:meth:`PoolFile.check_compatible`, an error naming both sides).
Files without ``space`` (written before it was recorded) mean ``"normalized"``.

Payload entries (state dicts, flat parameter tensors, lists of those) stay on the CPU as read; what a consumer uses
(a frozen network, a trajectory on the GPU) is *materialised* lazily, once per device and entry, on first use
(:meth:`PoolFile.materialized`), and held in plain dicts: never registered submodules, so nothing enters a
checkpoint, a DDP broadcast or a precision plugin's cast.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor

from lightning_dd._atomic import atomic_torch_save
from lightning_dd.synthetic import IMAGE_SPACES

__all__ = ["HEADER_FIELDS", "PoolFile", "device_key"]

HEADER_FIELDS: tuple[str, ...] = ("network", "dataset", "image_shape", "num_classes", "mean", "std", "space", "info")
"""The header keys of every pool file (besides ``format`` / ``format_version`` and the payload)."""

_PoolT = TypeVar("_PoolT", bound="PoolFile")
_PLAIN = (type(None), bool, int, float, str, Tensor)


def device_key(device: torch.device | str) -> torch.device:
    """``device`` as a dict key: ``"cuda"`` becomes ``cuda:<current index>`` (what tensors report)."""
    d = torch.device(device)
    if d.type == "cuda" and d.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return d


def _check_plain(value: Any, where: str) -> None:
    """Refuse values ``torch.load(weights_only=True)`` could not read back (custom objects)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where} keys must be strings, got {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise ValueError(f"{where} must hold plain values (None, bool, int, float, str, tensors, lists, dicts), "
                         f"got {type(value).__name__}")


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6) for x, y in zip(a, b, strict=True))


class PoolFile(ABC):
    """K payload entries plus the header that says what they were made for; one file, loaded lazily per device.

    Subclasses set the class attributes, implement :meth:`_materialize` (entry -> usable object on a device) and
    :meth:`_from_file` (construction from a read file), and may refine :meth:`_check_entry`, :meth:`accepts_space`,
    :meth:`create_hint` and :meth:`remedy`.

    Args:
        entries: the payload (CPU state dicts, flat tensors, ...), at least one.
        network: zoo name of the architecture the entries belong to.
        dataset, image_shape, num_classes, mean, std: what the entries were trained on (``image_shape`` ``(C, H, W)``;
            inputs normalised with ``mean`` / ``std`` per channel).
        space: image space of the training inputs (``lightning_dd.synthetic.IMAGE_SPACES``).
        info: plain metadata (recipe, seed, accuracies); must survive ``torch.load(weights_only=True)``.
        device: the default device of :meth:`materialized`.

    Class attributes:
        format_name: the ``format`` string of the file.
        format_version: the newest ``format_version`` this class writes and reads.
        kind: human name in messages (``"proxy pool"``).
        payload_key: the file key of the entries (``"state_dicts"``).
    """

    format_name: ClassVar[str]
    format_version: ClassVar[int]
    kind: ClassVar[str]
    payload_key: ClassVar[str]

    def __init__(self, entries: Sequence[Any], network: str, dataset: str, image_shape: Sequence[int],
                 num_classes: int, mean: Sequence[float], std: Sequence[float], space: str = "normalized",
                 info: Mapping[str, Any] | None = None, device: torch.device | str = "cpu") -> None:
        if len(entries) == 0:
            raise ValueError(f"a {self.kind} needs at least one entry, got none")
        if len(tuple(image_shape)) != 3 or any(int(s) < 1 for s in image_shape):
            raise ValueError(f"image_shape must be (C, H, W) of positive sizes, got {tuple(image_shape)}")
        c = int(image_shape[0])
        if len(mean) != c or len(std) != c:
            raise ValueError(f"mean and std need one value per channel (C={c}), got mean={list(mean)} std={list(std)}")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if space not in IMAGE_SPACES:
            raise ValueError(f"space must be one of {IMAGE_SPACES}, got {space!r}")
        info = dict(info or {})
        _check_plain(info, "info")
        self._entries: list[Any] = list(entries)
        self.network = str(network)
        self.dataset = str(dataset)
        self.image_shape: tuple[int, int, int] = (c, int(image_shape[1]), int(image_shape[2]))
        self.num_classes = int(num_classes)
        self.mean: tuple[float, ...] = tuple(float(m) for m in mean)
        self.std: tuple[float, ...] = tuple(float(s) for s in std)
        self.space = space
        self.info: dict[str, Any] = info
        self.device = device_key(device)
        self.path: Path | None = None  # the file it was read from, if any (used in messages)
        # device -> entry index -> materialised object: plain dicts, never submodules
        self._materialized: dict[torch.device, dict[int, Any]] = {}

    # ------------------------------------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _materialize(self, entry: Any, device: torch.device) -> Any:
        """Build the usable object of one entry on ``device`` (called once per device and entry)."""

    @classmethod
    @abstractmethod
    def _from_file(cls: type[_PoolT], entries: list[Any], header: dict[str, Any],
                   device: torch.device) -> _PoolT:
        """Construct from a read file: ``header`` has every key of :data:`HEADER_FIELDS`."""

    @classmethod
    def _check_entry(cls, entry: Any, index: int) -> None:
        """Raise ``ValueError`` if a read payload entry is malformed (default: a tensor, or containers of them)."""
        _check_plain(entry, f"{cls.payload_key}[{index}]")

    @classmethod
    def create_hint(cls, path: str | Path) -> str:
        """How to create a missing file (appended to the "does not exist" error)."""
        return f"create it first ({cls.kind} files are written by lightning_dd)"

    @classmethod
    def remedy(cls, dataset: str) -> str:
        """What to do about an incompatible file (appended to :meth:`check_compatible`'s error)."""
        return f"make a {cls.kind} for dataset {dataset!r}"

    def accepts_space(self, space: str) -> bool:
        """Whether inputs in image ``space`` can be fed to the payload (default: the recorded space only)."""
        return space == self.space

    # ------------------------------------------------------------------------------------------ entries
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def entries(self) -> tuple[Any, ...]:
        """The payload as stored (CPU), read-only."""
        return tuple(self._entries)

    def materialized(self, index: int, device: torch.device | str | None = None) -> Any:
        """Entry ``index`` made usable on ``device`` (default :attr:`device`), built on first use and cached."""
        if not 0 <= index < len(self._entries):
            raise IndexError(f"{self.kind} has {len(self._entries)} entries, got index {index}")
        key = self.device if device is None else device_key(device)
        built = self._materialized.setdefault(key, {})
        if index not in built:
            built[index] = self._materialize(self._entries[index], key)
        return built[index]

    def materialized_devices(self) -> tuple[torch.device, ...]:
        """Devices on which at least one entry has been materialised."""
        return tuple(d for d, built in self._materialized.items() if built)

    # ------------------------------------------------------------------------------------------ compatibility
    def check_compatible(self, dataset: str, image_shape: Sequence[int], mean: Sequence[float],
                         std: Sequence[float], space: str, *, num_classes: int | None = None,
                         source: str | None = None) -> None:
        """Refuse a file made for other data, naming the file's and the run's values side by side.

        Args:
            dataset, image_shape, mean, std, space: the run's dataset, ``(C, H, W)``, normalisation and image space.
            num_classes: the run's number of classes (checked when given).
            source: how to name the file in the message (default: its path, or "the <kind>").

        Raises:
            ValueError: ``"<source> was made for dataset 'mnist' (run: 'digits'); ...: <remedy>"``.
        """
        problems = []
        if dataset != self.dataset:
            problems.append(f"dataset {self.dataset!r} (run: {dataset!r})")
        if tuple(int(s) for s in image_shape) != self.image_shape:
            problems.append(f"image shape {self.image_shape} (run: {tuple(image_shape)})")
        if num_classes is not None and int(num_classes) != self.num_classes:
            problems.append(f"{self.num_classes} classes (run: {num_classes})")
        if not _close(mean, self.mean) or not _close(std, self.std):
            problems.append(f"normalisation mean={list(self.mean)} std={list(self.std)} "
                            f"(run: mean={list(mean)} std={list(std)})")
        if not self.accepts_space(space):
            problems.append(f"image space {self.space!r} (run: {space!r})")
        if problems:
            if source is None:
                source = f"{self.kind} {self.path}" if self.path is not None else f"the {self.kind}"
            raise ValueError(f"{source} was made for {'; '.join(problems)}: {self.remedy(dataset)}")

    # ------------------------------------------------------------------------------------------ file
    def header(self) -> dict[str, Any]:
        """The :data:`HEADER_FIELDS` as plain values."""
        return {"network": self.network, "dataset": self.dataset, "image_shape": list(self.image_shape),
                "num_classes": self.num_classes, "mean": list(self.mean), "std": list(self.std), "space": self.space,
                "info": self.info}

    def to_dict(self) -> dict[str, Any]:
        """The file content (format, version, header, payload)."""
        return {"format": self.format_name, "format_version": self.format_version, **self.header(),
                self.payload_key: list(self._entries)}

    def save(self, path: str | Path) -> Path:
        """Write the file atomically (a reader never sees half a file); returns ``path``."""
        return atomic_torch_save(self.to_dict(), path)

    @classmethod
    def load(cls: type[_PoolT], path: str | Path, device: torch.device | str = "cpu") -> _PoolT:
        """Read a file written by :meth:`save` (entries stay on the CPU; ``device`` is the default materialisation
        device, nothing is built yet).

        Raises:
            FileNotFoundError: no such file (the message says how to create one).
            ValueError: unreadable / truncated, not this format, a newer ``format_version``, or a damaged header.
        """
        path = Path(path)
        name = f"lightning_dd {cls.kind}"
        if not path.is_file():
            raise FileNotFoundError(f"{cls.kind} {str(path)!r} does not exist: {cls.create_hint(path)}")
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{str(path)!r} is not a readable {name} ({type(err).__name__}: {err})") from err
        if not isinstance(d, dict) or d.get("format") != cls.format_name:
            found = f"format={d.get('format')!r}" if isinstance(d, dict) else f"a {type(d).__name__}"
            raise ValueError(f"{str(path)!r} is not a {name} (expected format={cls.format_name!r}, found {found})")
        version = d.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ValueError(f"{str(path)!r} is a damaged {name}: format_version {version!r} is not an integer >= 1")
        if version > cls.format_version:
            raise ValueError(f"{str(path)!r} is a {name} of format_version {version}, newer than this lightning_dd "
                             f"reads (<= {cls.format_version}): upgrade lightning_dd to read it")
        header = {"space": "normalized", "info": {}, **{k: d[k] for k in HEADER_FIELDS if k in d}}  # old: no space
        missing = [k for k in (*HEADER_FIELDS, cls.payload_key) if k not in header and k not in d]
        entries = d.get(cls.payload_key)
        if missing or not isinstance(entries, list):
            raise ValueError(f"{str(path)!r} is a damaged {name}: missing or malformed fields "
                             f"{missing or [cls.payload_key]}")
        try:
            for i, entry in enumerate(entries):
                cls._check_entry(entry, i)
            pool = cls._from_file(entries, header, device_key(device))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{str(path)!r} is a damaged {name}: {err}") from err
        pool.path = path
        return pool
