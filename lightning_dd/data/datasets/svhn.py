"""SVHN (street-view house numbers, digits 0..9).

Layouts (:class:`SvhnSpec`), in order:

1. original format ``root/{train,test}_32x32.mat`` (MATLAB files: ``X`` ``(32, 32, 3, N)`` uint8, ``y`` ``(N, 1)``
   with 10 standing for digit 0);
2. ``root/{train,test}/<class>/*`` and 3. ``root/svhn/{train,test}/<class>/*`` (image folders, classes ``0``..``9``).

Who reads the ``.mat`` files: ``torchvision.datasets.SVHN(root, split, download=False)`` when torchvision's md5 check
of the official file passes; our :func:`read_svhn` otherwise (re-packed copies, test fixtures), parsing the same way
(``X`` transposed with ``(3, 2, 0, 1)``, label 10 mapped to 0).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lightning_dd.data.datasets.base import FileDatasetSpec, Reader, Split, official_or_repacked
from lightning_dd.data.types import DIGIT_DSA_STRATEGY, DatasetInfo, LabeledImages, fixed_info

__all__ = ["INFO", "SvhnSpec", "read_svhn", "read_torchvision_svhn"]

log = logging.getLogger(__name__)

#: Classes ``"0"``..``"9"``; statistics of the reference DD code (VICO-UoE/DatasetCondensation).
INFO: DatasetInfo = fixed_info(
    "svhn",
    3,
    32,
    (0.4377, 0.4438, 0.4728),
    (0.1980, 0.2010, 0.1970),
    tuple(str(d) for d in range(10)),
    DIGIT_DSA_STRATEGY,
)


def read_svhn(root: str | Path, train: bool, class_names: Sequence[str]) -> LabeledImages:
    """Read SVHN ``root/{train,test}_32x32.mat`` the way torchvision's ``SVHN`` does, without its md5 check.

    ``X`` is ``(32, 32, 3, N)`` (transposed with ``(3, 2, 0, 1)``), ``y`` is ``(N, 1)`` with label 10 for digit 0.

    Returns:
        :class:`LabeledImages` (``uint8 (N, 3, 32, 32)``, ``int64 (N,)``).
    """
    import scipy.io as sio

    mat = sio.loadmat(str(Path(root) / f"{'train' if train else 'test'}_32x32.mat"))
    labels = np.asarray(mat["y"]).astype(np.int64).reshape(-1)
    labels[labels == 10] = 0
    images = np.ascontiguousarray(np.transpose(np.asarray(mat["X"], dtype=np.uint8), (3, 2, 0, 1)))
    return LabeledImages(torch.from_numpy(images), torch.from_numpy(labels), tuple(class_names))


def read_torchvision_svhn(root: str | Path, train: bool, class_names: Sequence[str]) -> LabeledImages | None:
    """Read the official ``{train,test}_32x32.mat`` with ``torchvision.datasets.SVHN``.

    Returns:
        :class:`LabeledImages` (``uint8 (N, 3, 32, 32)``, ``int64 (N,)``), or ``None`` when torchvision refuses the
        file (missing, or its md5 is not the official release's).
    """
    from torchvision.datasets import SVHN

    try:
        ds = SVHN(str(root), split="train" if train else "test", download=False)
    except RuntimeError as err:  # "Dataset not found or corrupted": md5 check
        log.debug("torchvision's SVHN refuses %s (%s)", root, err)
        return None
    images = torch.from_numpy(np.ascontiguousarray(np.asarray(ds.data, dtype=np.uint8)))
    labels = torch.from_numpy(np.asarray(ds.labels, dtype=np.int64).reshape(-1))
    return LabeledImages(images, labels, tuple(class_names))


def _reader(root: Path, train: bool) -> Reader:
    path = root / f"{'train' if train else 'test'}_32x32.mat"
    return official_or_repacked(lambda: read_torchvision_svhn(root, train, INFO.class_names),
                                lambda: read_svhn(root, train, INFO.class_names), path,
                                ("torchvision.datasets.SVHN", "read_svhn"), log)


class SvhnSpec(FileDatasetSpec):
    """SVHN (10 classes, ``3x32x32``): layouts and readers as described in :mod:`.svhn`."""

    name = "svhn"

    def info(self, root: Path | None = None) -> DatasetInfo:
        return INFO

    def originals(self, root: Path, split: Split) -> list[tuple[str, Reader | None]]:
        text = f"original format: {root}/{{train,test}}_32x32.mat"
        present = (root / f"{split}_32x32.mat").is_file()
        return [(text, _reader(root, split == "train") if present else None)]

    def download_original(self, root: Path) -> None:
        from torchvision.datasets import SVHN

        SVHN(str(root), split="train", download=True)
        SVHN(str(root), split="test", download=True)
