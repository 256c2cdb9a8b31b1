"""Registered datasets: names, descriptions, and split loading, as a thin layer over the dataset specs.

Every registered dataset has one spec in :mod:`lightning_dd.data.datasets` (``<name>.py``: its
:class:`DatasetInfo`, accepted on-disk layouts, reader and download). The statistics are the ones the reference
dataset-distillation code uses (``VICO-UoE/DatasetCondensation: utils.py get_dataset``), so that synthetic images
live in the same normalized space as in the papers.

Class names (label index order):

* ``digits``, ``mnist``, ``svhn``: ``"0"`` … ``"9"`` (SVHN's label 10 means digit 0, as torchvision maps it).
* ``fashion_mnist``: torchvision's ``FashionMNIST.classes`` order, spelled as folder-safe names
  (``"tshirt_top"`` for ``"T-shirt/top"``, ``"ankle_boot"`` for ``"Ankle boot"``, the rest lower case).
* ``cifar10`` / ``cifar100``: torchvision's ``classes`` order (the ``batches.meta`` / ``meta`` label names).
* ``tiny_imagenet``: the sorted WordNet ids from ``wnids.txt`` (known only from the files, so its
  :class:`DatasetInfo` needs ``root``).
* ``image_folder``: the sorted sub-folder names of ``root/train``.

The embedded default ``digits`` is ``sklearn.datasets.load_digits()`` (see :mod:`lightning_dd.data.datasets.digits`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from lightning_dd.data.datasets import DATASETS
from lightning_dd.data.datasets.tiny_imagenet import (
    TINY_IMAGENET_CHANNELS,
    TINY_IMAGENET_MEAN,
    TINY_IMAGENET_NUM_CLASSES,
    TINY_IMAGENET_SIZE,
    TINY_IMAGENET_STD,
)
from lightning_dd.data.types import (
    DEFAULT_DSA_STRATEGY,
    DIGIT_DSA_STRATEGY,
    DatasetInfo,
    LabeledImages,
    normalize,
)

__all__ = [
    "DATASET_NAMES",
    "DEFAULT_DSA_STRATEGY",
    "DIGIT_DSA_STRATEGY",
    "EMBEDDED_DATASETS",
    "TINY_IMAGENET_CHANNELS",
    "TINY_IMAGENET_MEAN",
    "TINY_IMAGENET_NUM_CLASSES",
    "TINY_IMAGENET_SIZE",
    "TINY_IMAGENET_STD",
    "DatasetInfo",
    "DatasetName",
    "LabeledImages",
    "check_dataset_name",
    "dataset_info",
    "download",
    "load_registered_split",
    "load_split",
    "normalize",
    "require_root",
]

#: Every accepted value of ``dataset``.
DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)
#: the registered dataset names, as a type (command-line choices); equals DATASET_NAMES (checked below)
DatasetName = Literal[
    "digits", "mnist", "fashion_mnist", "svhn", "cifar10", "cifar100", "tiny_imagenet", "image_folder"
]
if get_args(DatasetName) != DATASET_NAMES:  # one list, two spellings: keep them equal
    raise ImportError("DatasetName and DATASET_NAMES differ")

#: Datasets that ship inside an installed package and need no ``root``.
EMBEDDED_DATASETS: tuple[str, ...] = tuple(name for name, spec in DATASETS.items() if not spec.needs_root)


def check_dataset_name(name: str) -> str:
    """Return ``name`` if registered, else raise ``ValueError`` naming it and listing the allowed names."""
    if name not in DATASET_NAMES:
        raise ValueError(f"Unknown dataset {name!r}; expected one of: {', '.join(DATASET_NAMES)}")
    return name


def require_root(name: str, root: str | Path | None) -> Path:
    """Return ``root`` as an absolute ``Path``; raise ``ValueError`` when a non-embedded dataset has none."""
    if root is None:
        raise ValueError(
            f"Dataset {name!r} is read from files, so `root` is required (a folder holding the dataset in its "
            f"original format or as root/train/<class>/*, root/test/<class>/*; on the command line: "
            f"--data.root PATH). Only {', '.join(repr(n) for n in EMBEDDED_DATASETS)} needs no root."
        )
    return Path(root).expanduser().absolute()


def dataset_info(name: str, root: str | Path | None = None) -> DatasetInfo:
    """Describe a registered dataset.

    Args:
        name: one of :data:`DATASET_NAMES`.
        root: dataset folder. Ignored by the fixed datasets; required by ``tiny_imagenet`` (class names =
            sorted ``wnids.txt``, or the sorted ``train/`` sub-folders of an image-folder copy) and by
            ``image_folder``.

    For ``image_folder`` the classes are the sorted sub-folders of ``root/train``; channels and size come from the
    train images (1 channel only if every train image is grayscale, else 3; every image must have the size of the
    first one, else ``ValueError`` naming the file); mean/std are the population statistics of ``x / 255`` over the
    decoded train split. The decoded split is cached on disk (see :mod:`lightning_dd.data.cache`) and the
    statistics are cached next to it and in-process, so only the first call per folder state decodes images.

    Raises:
        ValueError: unknown ``name``, or ``root`` missing where required.
        FileNotFoundError: ``tiny_imagenet`` / ``image_folder`` files not found under ``root``.
    """
    spec = DATASETS[check_dataset_name(name)]
    return spec.info(require_root(name, root) if spec.info_needs_root else None)


def load_split(name: str, root: str | Path | None, train: bool, download: bool = False) -> LabeledImages:
    """Load one split of a registered dataset into memory.

    Layouts are tried in this order (the first that exists wins; each spec's docstring lists its own):

    1. the original format under ``root`` (read by torchvision's dataset class where torchvision can read the
       files as they are: MNIST, FashionMNIST, and the official CIFAR-10/100 and SVHN files whose md5 torchvision
       verifies; by our own readers of the same formats for re-packed CIFAR/SVHN copies, whose md5 differs, and
       for Tiny ImageNet's official ``train/`` + ``val/``);
    2. an image-folder layout ``root/train/<class>/*`` / ``root/test/<class>/*``;
    3. the same under ``root/<name>/``;
    4. with ``download=True``: torchvision's download into ``root``, then 1.;
    5. otherwise ``FileNotFoundError`` naming the dataset, ``root``, every layout searched and how to get the files.

    Image-folder copies of registered datasets keep the registry's statistics and class order: the folder names must
    be exactly the dataset's class names.

    Args:
        name: one of :data:`DATASET_NAMES`.
        root: dataset folder (ignored for ``digits``; required otherwise).
        train: train split if ``True``, else the test split (``val/`` for Tiny ImageNet).
        download: allow torchvision to download the original files into ``root`` when nothing is found.

    Returns:
        :class:`LabeledImages` with ``uint8 (N, C, H, W)`` images and ``int64 (N,)`` labels.
    """
    spec = DATASETS[check_dataset_name(name)]
    path = require_root(name, root) if spec.needs_root else None
    return spec.read(path, "train" if train else "test", download=download)


def load_registered_split(name: str, root: str | Path, train: bool, download: bool = False) -> LabeledImages:
    """:func:`load_split` for a ``root`` that is always given (kept for callers of the former readers module)."""
    return load_split(name, root, train=train, download=download)


def download(name: str, root: str | Path) -> None:
    """Download ``name`` into ``root`` with torchvision unless one of its layouts is already there (both splits).

    ``digits`` (embedded) and ``image_folder`` need nothing; ``tiny_imagenet`` fetches the official zip with
    torchvision's ``download_and_extract_archive``.

    Raises:
        ValueError: unknown ``name``. RuntimeError: the download failed (the message says what to do offline).
    """
    spec = DATASETS[check_dataset_name(name)]
    if spec.needs_root:
        spec.download(Path(root).expanduser().absolute())
