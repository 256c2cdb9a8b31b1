"""The shape of one dataset spec: its description, the on-disk layouts it accepts, reading, downloading.

A :class:`DatasetSpec` answers four questions about one registered dataset:

* :meth:`~DatasetSpec.info`: its :class:`~lightning_dd.data.types.DatasetInfo`;
* :meth:`~DatasetSpec.find`: which of its accepted layouts is present under ``root`` for a split (a
  :class:`Lookup`: a reader or ``None``, plus every layout searched, in order, for the not-found message);
* :meth:`~DatasetSpec.read`: the split in memory (``FileNotFoundError`` listing the layouts when none is there);
* :meth:`~DatasetSpec.download`: fetch the original files into ``root`` unless a layout is there already.

:class:`FileDatasetSpec` is the common case of a dataset with an original on-disk format (subclasses list those
layouts in :meth:`~FileDatasetSpec.originals`) that may also come as an image-folder copy
``root/<split>/<class>/*`` or ``root/<name>/<split>/<class>/*`` whose class folders carry the registry's class names.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from lightning_dd.data.image_folder import image_folder_text, not_found_message, read_image_folder
from lightning_dd.data.types import DatasetInfo, LabeledImages

__all__ = ["SPLITS", "DatasetSpec", "FileDatasetSpec", "Lookup", "Reader", "Split", "check_split"]

#: A split name: ``"train"`` or ``"test"`` (Tiny ImageNet's test split is its ``val/`` folder).
Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")
#: Reads one split found on disk.

Reader = Callable[[], LabeledImages]


def check_split(split: str) -> Split:
    """Return ``split`` if it is ``"train"`` or ``"test"``, else raise ``ValueError`` naming it."""
    if split == "train":
        return "train"
    if split == "test":
        return "test"
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")


@dataclass(frozen=True)
class Lookup:
    """What :meth:`DatasetSpec.find` found.

    Attributes:
        reader: reads the split from the first layout present, or ``None`` if no layout is present.
        searched: every accepted layout, in the order they are tried, as shown in the not-found message.
    """

    reader: Reader | None
    searched: tuple[str, ...]


class DatasetSpec(ABC):
    """One registered dataset.

    Attributes:
        name: registry key.
        needs_root: whether the files live under a ``root`` folder (``False`` for embedded datasets).
        info_needs_root: whether :meth:`info` reads files (class names or statistics come from ``root``).
    """

    name: ClassVar[str]
    needs_root: ClassVar[bool] = True
    info_needs_root: ClassVar[bool] = False

    @abstractmethod
    def info(self, root: Path | None = None) -> DatasetInfo:
        """The dataset's description; ``root`` (absolute) only matters where :attr:`info_needs_root`."""

    @abstractmethod
    def find(self, root: Path, split: Split) -> Lookup:
        """The first accepted layout of ``split`` present under ``root`` (absolute), and all layouts searched."""

    def fetch(self, root: Path) -> None:
        """Download the original files into ``root`` (raises ``ValueError``: this dataset cannot be downloaded)."""
        raise ValueError(f"Dataset {self.name!r} cannot be downloaded")

    def advice(self) -> str:
        """Last line of the not-found message: how to get the files."""
        return (
            "To get the files: pass download=True (command line: --data.download true) to download the original "
            "files with torchvision into root, or put an image-folder copy at root/train/<class>/* and "
            f"root/test/<class>/* (or under root/{self.name}/) whose folder names are the dataset's class names."
        )

    def not_found(self, root: Path, searched: tuple[str, ...]) -> FileNotFoundError:
        """The error raised when no layout of a split is present: dataset, ``root``, layouts searched, advice."""
        return FileNotFoundError(not_found_message(self.name, root, searched, self.advice()))

    def _root(self, root: Path | None) -> Path:
        if root is None:
            raise ValueError(f"Dataset {self.name!r} is read from files, so `root` is required")
        return root

    def read(self, root: Path | None, split: Split, download: bool = False) -> LabeledImages:
        """Read ``split`` from the first layout present under ``root``.

        Args:
            root: absolute dataset folder (ignored by embedded datasets).
            split: ``"train"`` or ``"test"``.
            download: when no layout is present, :meth:`fetch` the original files first.

        Returns:
            :class:`LabeledImages` (``uint8 (N, C, H, W)``, ``int64 (N,)``).

        Raises:
            FileNotFoundError: no layout present (the message names the dataset, ``root`` and every layout searched).
        """
        path = self._root(root)
        split = check_split(split)
        lookup = self.find(path, split)
        if lookup.reader is None and download:
            self.fetch(path)
            lookup = self.find(path, split)
        if lookup.reader is None:
            raise self.not_found(path, lookup.searched)
        return lookup.reader()

    def download(self, root: Path) -> None:
        """:meth:`fetch` the original files into ``root`` unless both splits are present in some layout already."""
        if all(self.find(root, split).reader is not None for split in SPLITS):
            return
        self.fetch(root)


class FileDatasetSpec(DatasetSpec):
    """A dataset with an original on-disk format, also accepted as an image-folder copy.

    Layouts, in order: :meth:`originals`, then ``root/<split>/<class>/*``, then ``root/<name>/<split>/<class>/*``.
    The class folders of a copy must be exactly the registry's class names; labels follow the registry's order and
    every image must have the registered channels and size.
    """

    @abstractmethod
    def originals(self, root: Path, split: Split) -> list[tuple[str, Reader | None]]:
        """The original-format layouts of ``split`` under ``root``: ``(text, reader or None if absent)``, in order."""

    @abstractmethod
    def download_original(self, root: Path) -> None:
        """Fetch the original files into ``root`` (torchvision's ``download=True``); may raise ``OSError``."""

    def copies(self, root: Path) -> list[Path]:
        """The folders that may hold an image-folder copy (one ``<split>/`` below each), in order."""
        return [root, root / self.name]

    def find(self, root: Path, split: Split) -> Lookup:
        searched: list[str] = []
        found: Reader | None = None
        for text, reader in self.originals(root, split):
            searched.append(text)
            found = found or reader
        for base in self.copies(root):
            split_dir = base / split
            searched.append(image_folder_text(split_dir))
            if found is None and split_dir.is_dir():
                found = self._copy_reader(root, split_dir)
        return Lookup(found, tuple(searched))

    def _copy_reader(self, root: Path, split_dir: Path) -> Reader:
        def read() -> LabeledImages:
            info = self.info(root)
            return read_image_folder(split_dir, info.class_names, info.channels, info.image_size)

        return read

    def fetch(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        try:
            self.download_original(root)
        except (OSError, RuntimeError) as err:
            raise RuntimeError(
                f"Downloading {self.name!r} into {root} failed: {err}. Without network access, put the files in one "
                "of the layouts listed by load_split's FileNotFoundError (e.g. root/train/<class>/*, "
                "root/test/<class>/*)."
            ) from err


def official_or_repacked(
    official: Callable[[], LabeledImages | None],
    repacked: Callable[[], LabeledImages],
    where: Path,
    names: tuple[str, str],
    logger: logging.Logger,
) -> Reader:
    """A reader that prefers torchvision's class and falls back to our reader of the same format.

    ``official()`` returns ``None`` when torchvision refuses the files (their md5 is not the official release's);
    ``repacked()`` is ours. ``names``: (torchvision's class, our reader) for the log line on ``logger`` that says which
    one read ``where``.
    """

    def read() -> LabeledImages:
        data = official()
        if data is not None:
            logger.info("%s: official files (md5 verified), read by %s", where, names[0])
            return data
        logger.info("%s: md5 differs from the official release (a re-packed copy), read by %s", where, names[1])
        return repacked()

    return read
