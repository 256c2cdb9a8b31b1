"""MNIST, and the idx-file reading FashionMNIST shares.

Layouts (:class:`MnistSpec`), in order:

1. original format ``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` (idx files);
2. ``root/{train,test}/<class>/*`` and 3. ``root/mnist/{train,test}/<class>/*`` (image folders, classes ``0``..``9``).

Who reads the idx files: always torchvision's own ``MNIST`` class (``download=False``), which only checks that the
decompressed files exist (no md5), so any correct copy is read by torchvision. When only the ``.gz`` files are there,
they are first decompressed next to themselves (what torchvision's ``download`` does after fetching them), atomically.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch

from lightning_dd._atomic import atomic_write
from lightning_dd.data.datasets.base import FileDatasetSpec, Reader, Split
from lightning_dd.data.types import DIGIT_DSA_STRATEGY, DatasetInfo, LabeledImages, fixed_info

__all__ = ["INFO", "MNIST_FILES", "MnistSpec", "mnist_present", "read_mnist"]

#: Classes ``"0"``..``"9"``; statistics of the reference DD code (VICO-UoE/DatasetCondensation).
INFO: DatasetInfo = fixed_info(
    "mnist", 1, 28, (0.1307,), (0.3081,), tuple(str(d) for d in range(10)), DIGIT_DSA_STRATEGY
)

#: The decompressed idx files torchvision reads from ``raw/``.
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def mnist_raw(root: Path, fashion: bool) -> Path:
    """torchvision's raw-file folder: ``root/MNIST/raw`` or ``root/FashionMNIST/raw``."""
    return root / ("FashionMNIST" if fashion else "MNIST") / "raw"


def mnist_present(root: Path, fashion: bool) -> bool:
    """Whether every idx file is present in ``raw/``, decompressed or as ``.gz``."""
    raw = mnist_raw(root, fashion)
    return all((raw / f).is_file() or (raw / f"{f}.gz").is_file() for f in MNIST_FILES)


def _gunzip_to(packed: Path) -> None:
    def write(tmp: Path) -> None:
        with gzip.open(packed, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)

    atomic_write(packed.with_suffix(""), write)


def read_mnist(root: str | Path, fashion: bool, train: bool, class_names: Sequence[str]) -> LabeledImages:
    """Read MNIST / FashionMNIST idx files with torchvision's own ``MNIST`` / ``FashionMNIST`` class.

    ``root`` is torchvision's root (the files are in ``root/MNIST/raw`` or ``root/FashionMNIST/raw``). Missing
    decompressed files are created from their ``.gz`` first.

    Returns:
        :class:`LabeledImages` (``uint8 (N, 1, 28, 28)``, ``int64 (N,)``).
    """
    from torchvision.datasets import MNIST, FashionMNIST

    root = Path(root)
    raw = mnist_raw(root, fashion)
    for name in MNIST_FILES:
        if not (raw / name).is_file() and (raw / f"{name}.gz").is_file():
            _gunzip_to(raw / f"{name}.gz")
    cls = FashionMNIST if fashion else MNIST
    ds = cls(str(root), train=train, download=False)
    images = ds.data.to(torch.uint8).unsqueeze(1).contiguous()
    return LabeledImages(images, ds.targets.to(torch.int64), tuple(class_names))


class MnistSpec(FileDatasetSpec):
    """MNIST (10 classes, ``1x28x28``): layouts and reader as described in :mod:`.mnist`."""

    name = "mnist"
    fashion: ClassVar[bool] = False

    def info(self, root: Path | None = None) -> DatasetInfo:
        return INFO

    def originals(self, root: Path, split: Split) -> list[tuple[str, Reader | None]]:
        raw = mnist_raw(root, self.fashion)
        text = f"original format: {raw}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz] (idx files)"
        if not mnist_present(root, self.fashion):
            return [(text, None)]
        names = self.info().class_names
        return [(text, lambda: read_mnist(root, self.fashion, split == "train", names))]

    def download_original(self, root: Path) -> None:
        from torchvision.datasets import MNIST

        MNIST(str(root), train=True, download=True)
