"""CIFAR-100 (100 fine classes).

Layouts (:class:`Cifar100Spec`), in order:

1. original format ``root/cifar-100-python/{train,test,meta}`` (python pickles);
2. ``root/{train,test}/<class>/*`` and 3. ``root/cifar100/{train,test}/<class>/*`` (image folders).

Who reads the pickles: ``torchvision.datasets.CIFAR100(root, train, download=False)`` when torchvision's md5 check of
the official release passes; our :func:`~lightning_dd.data.datasets.cifar10.read_cifar` otherwise (re-packed copies,
test fixtures), parsing the same way (``fine_labels``, ``meta``'s ``fine_label_names`` = the registry's names).
"""

from __future__ import annotations

from pathlib import Path

from lightning_dd.data.datasets.base import FileDatasetSpec, Reader, Split
from lightning_dd.data.datasets.cifar10 import cifar_reader
from lightning_dd.data.types import DEFAULT_DSA_STRATEGY, DatasetInfo, fixed_info

__all__ = ["INFO", "Cifar100Spec"]

# The 100 fine labels, in the order of cifar-100-python/meta "fine_label_names" (== torchvision CIFAR100.classes).
# fmt: off
CIFAR100_NAMES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
# fmt: on

#: Statistics of the reference DD code (VICO-UoE/DatasetCondensation).
INFO: DatasetInfo = fixed_info(
    "cifar100", 3, 32, (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762), CIFAR100_NAMES, DEFAULT_DSA_STRATEGY
)


class Cifar100Spec(FileDatasetSpec):
    """CIFAR-100 (100 classes, ``3x32x32``): layouts and readers as described in :mod:`.cifar100`."""

    name = "cifar100"

    def info(self, root: Path | None = None) -> DatasetInfo:
        return INFO

    def originals(self, root: Path, split: Split) -> list[tuple[str, Reader | None]]:
        folder = root / "cifar-100-python"
        text = f"original format: {folder}/{{train,test,meta}} (python pickles)"
        present = all((folder / f).is_file() for f in (split, "meta"))
        return [(text, cifar_reader(root, True, split == "train", INFO.class_names) if present else None)]

    def download_original(self, root: Path) -> None:
        from torchvision.datasets import CIFAR100

        CIFAR100(str(root), train=True, download=True)
