"""FashionMNIST (10 clothing classes).

Layouts (:class:`FashionMnistSpec`), in order:

1. original format ``root/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` (idx files);
2. ``root/{train,test}/<class>/*`` and 3. ``root/fashion_mnist/{train,test}/<class>/*`` (image folders).

Who reads the idx files: always torchvision's own ``FashionMNIST`` class (it checks existence only, no md5), via
:func:`~lightning_dd.data.datasets.mnist.read_mnist` (``.gz``-only copies are decompressed first).

Class names: torchvision's ``FashionMNIST.classes`` order, spelled as folder-safe names (``"tshirt_top"`` for
``"T-shirt/top"``, ``"ankle_boot"`` for ``"Ankle boot"``, the rest lower case).
"""

from __future__ import annotations

from pathlib import Path

from lightning_dd.data.datasets.mnist import MnistSpec
from lightning_dd.data.types import DEFAULT_DSA_STRATEGY, DatasetInfo, fixed_info

__all__ = ["INFO", "FashionMnistSpec"]

FASHION_MNIST_NAMES = (
    "tshirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
#: Statistics of the reference DD code (VICO-UoE/DatasetCondensation).
INFO: DatasetInfo = fixed_info("fashion_mnist", 1, 28, (0.2861,), (0.3530,), FASHION_MNIST_NAMES, DEFAULT_DSA_STRATEGY)


class FashionMnistSpec(MnistSpec):
    """FashionMNIST (10 classes, ``1x28x28``): layouts and reader as described in :mod:`.fashion_mnist`."""

    name = "fashion_mnist"
    fashion = True

    def info(self, root: Path | None = None) -> DatasetInfo:
        return INFO

    def download_original(self, root: Path) -> None:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(root), train=True, download=True)
