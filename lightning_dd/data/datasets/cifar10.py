"""CIFAR-10, and the CIFAR python-pickle format CIFAR-100 shares.

Layouts (:class:`Cifar10Spec`), in order:

1. original format ``root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`` (python pickles);
2. ``root/{train,test}/<class>/*`` and 3. ``root/cifar10/{train,test}/<class>/*`` (image folders).

Who reads the pickles: ``torchvision.datasets.CIFAR10(root, train, download=False)`` when torchvision's md5 check of
the official release passes (its constructor succeeds); our :func:`read_cifar` otherwise, i.e. for re-packed copies
(and the test fixtures) whose md5 differs, since torchvision refuses any such file even with ``download=False``.
Both parse the same way (``pickle.load(..., encoding="latin1")``, ``data`` rows reshaped to ``(N, 3, 32, 32)``,
``labels`` / ``fine_labels``) and check that the label names equal the registry's class names.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lightning_dd.data.datasets.base import FileDatasetSpec, Reader, Split, official_or_repacked
from lightning_dd.data.types import DEFAULT_DSA_STRATEGY, DatasetInfo, LabeledImages, fixed_info

__all__ = ["INFO", "Cifar10Spec", "cifar_reader", "read_cifar", "read_torchvision_cifar"]

log = logging.getLogger(__name__)

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: torchvision's ``CIFAR10.classes`` order; statistics of the reference DD code (VICO-UoE/DatasetCondensation).
INFO: DatasetInfo = fixed_info(
    "cifar10", 3, 32, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), CIFAR10_NAMES, DEFAULT_DSA_STRATEGY
)


def _check_names(names: Sequence[str], class_names: Sequence[str], meta: Path) -> None:
    if tuple(names) != tuple(class_names):
        raise ValueError(f"{meta}: label names {list(names)} differ from {list(class_names)}")


def read_cifar(folder: str | Path, hundred: bool, train: bool, class_names: Sequence[str]) -> LabeledImages:
    """Read CIFAR-10 (``cifar-10-batches-py``) or CIFAR-100 (``cifar-100-python``) python pickles.

    Follows torchvision's ``CIFAR10`` / ``CIFAR100`` parsing without its md5 check: each batch is a pickle
    (``encoding="latin1"``) with ``data`` (``uint8 (N, 3072)``, rows = 1024 red, 1024 green, 1024 blue values) and
    ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100); the label names in ``batches.meta`` (``label_names``) /
    ``meta`` (``fine_label_names``) must equal ``class_names``.

    Returns:
        :class:`LabeledImages` (``uint8 (N, 3, 32, 32)``, ``int64 (N,)``).

    Raises:
        ValueError: the meta file's label names differ from ``class_names``.
    """
    folder = Path(folder)
    if hundred:
        files, meta_file, names_key = (["train"] if train else ["test"]), "meta", "fine_label_names"
    else:
        files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        meta_file, names_key = "batches.meta", "label_names"
    with open(folder / meta_file, "rb") as fh:
        names = tuple(str(n) for n in pickle.load(fh, encoding="latin1")[names_key])
    _check_names(names, class_names, folder / meta_file)
    data: list[np.ndarray] = []
    labels: list[int] = []
    for name in files:
        with open(folder / name, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        data.append(np.asarray(entry["data"], dtype=np.uint8))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    images = torch.from_numpy(np.ascontiguousarray(np.vstack(data).reshape(-1, 3, 32, 32)))
    return LabeledImages(images, torch.tensor(labels, dtype=torch.int64), tuple(class_names))


def read_torchvision_cifar(
    root: str | Path, hundred: bool, train: bool, class_names: Sequence[str]
) -> LabeledImages | None:
    """Read the official CIFAR-10/100 files with ``torchvision.datasets.CIFAR10`` / ``CIFAR100``.

    ``root`` is torchvision's root (holding ``cifar-10-batches-py`` / ``cifar-100-python``).

    Returns:
        :class:`LabeledImages` (``uint8 (N, 3, 32, 32)``, ``int64 (N,)``), or ``None`` when torchvision refuses
        the files (a file is missing or its md5 is not the official release's).

    Raises:
        ValueError: the label names differ from ``class_names``.
    """
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR100 if hundred else CIFAR10
    try:
        ds = cls(str(root), train=train, download=False)
    except RuntimeError as err:  # "Dataset not found or corrupted": md5 check
        log.debug("torchvision's %s refuses %s (%s)", cls.__name__, root, err)
        return None
    _check_names([str(c) for c in ds.classes], class_names, Path(root) / cls.base_folder / str(cls.meta["filename"]))
    images = torch.from_numpy(np.ascontiguousarray(np.asarray(ds.data, dtype=np.uint8).transpose(0, 3, 1, 2)))
    return LabeledImages(images, torch.tensor(ds.targets, dtype=torch.int64), tuple(class_names))


def cifar_reader(root: Path, hundred: bool, train: bool, class_names: Sequence[str]) -> Reader:
    """Reader of one CIFAR split: torchvision's class for the official files, :func:`read_cifar` otherwise."""
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    kind = "CIFAR100" if hundred else "CIFAR10"
    return official_or_repacked(lambda: read_torchvision_cifar(root, hundred, train, class_names),
                                lambda: read_cifar(folder, hundred, train, class_names), folder,
                                (f"torchvision.datasets.{kind}", "read_cifar"), log)


class Cifar10Spec(FileDatasetSpec):
    """CIFAR-10 (10 classes, ``3x32x32``): layouts and readers as described in :mod:`.cifar10`."""

    name = "cifar10"

    def info(self, root: Path | None = None) -> DatasetInfo:
        return INFO

    def originals(self, root: Path, split: Split) -> list[tuple[str, Reader | None]]:
        folder = root / "cifar-10-batches-py"
        text = f"original format: {folder}/{{data_batch_1..5,test_batch,batches.meta}} (python pickles)"
        train = split == "train"
        files = [*(f"data_batch_{i}" for i in range(1, 6))] if train else ["test_batch"]
        present = all((folder / f).is_file() for f in [*files, "batches.meta"])
        return [(text, cifar_reader(root, False, train, INFO.class_names) if present else None)]

    def download_original(self, root: Path) -> None:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)
