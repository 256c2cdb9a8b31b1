"""Registered datasets: shapes, class names, normalization statistics, and split loading.

Every registered dataset is described by a frozen :class:`DatasetInfo`. The statistics are the ones the
reference dataset-distillation code uses (``VICO-UoE/DatasetCondensation: utils.py get_dataset``), so that
synthetic images live in the same normalized space as in the papers.

Class names (label index order):

* ``digits``, ``mnist``, ``svhn``: ``"0"`` … ``"9"`` (SVHN's label 10 means digit 0, as torchvision maps it).
* ``fashion_mnist``: torchvision's ``FashionMNIST.classes`` order, spelled as folder-safe names
  (``"tshirt_top"`` for ``"T-shirt/top"``, ``"ankle_boot"`` for ``"Ankle boot"``, the rest lower case).
* ``cifar10`` / ``cifar100``: torchvision's ``classes`` order (the ``batches.meta`` / ``meta`` label names).
* ``tiny_imagenet``: the sorted WordNet ids from ``wnids.txt`` (known only from the files, so its
  :class:`DatasetInfo` needs ``root``).
* ``image_folder``: the sorted sub-folder names of ``root/train``.

The embedded default ``digits`` is ``sklearn.datasets.load_digits()`` (1 797 images, 8x8, values 0..16)
converted to ``uint8`` with ``round(v * 255 / 16)``. Its split is fixed and version independent: sample
``i`` (in ``load_digits`` order) is in the test split iff ``i % 5 == 4``, so the train split has 1 438 images
and the test split 359.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATASET_NAMES",
    "DatasetInfo",
    "LabeledImages",
    "dataset_info",
    "load_split",
    "normalize",
]

#: Every accepted value of ``dataset``.
DATASET_NAMES: tuple[str, ...] = (
    "digits",
    "mnist",
    "fashion_mnist",
    "svhn",
    "cifar10",
    "cifar100",
    "tiny_imagenet",
    "image_folder",
)

#: Datasets that ship inside an installed package and need no ``root``.
EMBEDDED_DATASETS: tuple[str, ...] = ("digits",)

#: Default DSA strategy of digit datasets (no horizontal flip: it changes a digit's meaning).
DIGIT_DSA_STRATEGY = "color_crop_cutout_scale_rotate"
#: Default DSA strategy of natural-image datasets.
DEFAULT_DSA_STRATEGY = "color_crop_cutout_flip_scale_rotate"


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset.

    Attributes:
        name: registry key, e.g. ``"cifar10"``.
        channels: number of image channels ``C``.
        image_size: ``(H, W)``.
        num_classes: number of classes (``len(class_names)``).
        mean: per-channel mean (length ``C``) of ``x / 255``, for :func:`normalize`.
        std: per-channel standard deviation (length ``C``) of ``x / 255``.
        class_names: class names in label-index order.
        dsa_strategy: default DSA augmentation strategy string.
    """

    name: str
    channels: int
    image_size: tuple[int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    dsa_strategy: str

    def __post_init__(self) -> None:
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"DatasetInfo {self.name!r}: mean/std need {self.channels} values, got {self.mean} / {self.std}"
            )
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"DatasetInfo {self.name!r}: {len(self.class_names)} class names for {self.num_classes} classes"
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return (self.channels, *self.image_size)


@dataclass
class LabeledImages:
    """One split of a dataset, fully in memory.

    Attributes:
        images: ``uint8`` tensor ``(N, C, H, W)``.
        labels: ``int64`` tensor ``(N,)`` with values in ``[0, len(class_names))``.
        class_names: class names in label-index order.
    """

    images: Tensor
    labels: Tensor
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 ({self.images.shape[0]},), got {self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])


_DIGIT_NAMES = tuple(str(d) for d in range(10))

_FASHION_MNIST_NAMES = (
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

_CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# The 100 fine labels, in the order of cifar-100-python/meta "fine_label_names" (== torchvision CIFAR100.classes).
# fmt: off
_CIFAR100_NAMES = (
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


def _fixed(
    name: str,
    channels: int,
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    class_names: tuple[str, ...],
    dsa: str,
) -> DatasetInfo:
    return DatasetInfo(name, channels, (size, size), len(class_names), mean, std, class_names, dsa)


# Digits: computed once from the train split (i % 5 != 4) of uint8 round(v*255/16) images, x/255,
# population statistics; tests/data recompute and compare to 1e-4.
_FIXED_INFO: dict[str, DatasetInfo] = {
    "digits": _fixed("digits", 1, 8, (0.305855,), (0.376279,), _DIGIT_NAMES, DIGIT_DSA_STRATEGY),
    "mnist": _fixed("mnist", 1, 28, (0.1307,), (0.3081,), _DIGIT_NAMES, DIGIT_DSA_STRATEGY),
    "fashion_mnist": _fixed("fashion_mnist", 1, 28, (0.2861,), (0.3530,), _FASHION_MNIST_NAMES, DEFAULT_DSA_STRATEGY),
    "svhn": _fixed("svhn", 3, 32, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), _DIGIT_NAMES, DIGIT_DSA_STRATEGY),
    "cifar10": _fixed(
        "cifar10", 3, 32, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), _CIFAR10_NAMES, DEFAULT_DSA_STRATEGY
    ),
    "cifar100": _fixed(
        "cifar100", 3, 32, (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762), _CIFAR100_NAMES, DEFAULT_DSA_STRATEGY
    ),
}

#: Shape and statistics of Tiny ImageNet (ImageNet statistics, as in the VICO/MTT code); class names come from files.
TINY_IMAGENET_CHANNELS = 3
TINY_IMAGENET_SIZE = (64, 64)
TINY_IMAGENET_MEAN = (0.485, 0.456, 0.406)
TINY_IMAGENET_STD = (0.229, 0.224, 0.225)
TINY_IMAGENET_NUM_CLASSES = 200


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
    decoded train split. The decoded split is cached on disk (see :mod:`lightning_dd.data.readers`) and the
    statistics are cached next to it and in-process, so only the first call per folder state decodes images.

    Raises:
        ValueError: unknown ``name``, or ``root`` missing where required.
        FileNotFoundError: ``tiny_imagenet`` / ``image_folder`` files not found under ``root``.
    """
    check_dataset_name(name)
    if name in _FIXED_INFO:
        return _FIXED_INFO[name]
    from lightning_dd.data import readers

    path = require_root(name, root)
    if name == "tiny_imagenet":
        class_names = readers.tiny_imagenet_class_names(path)
        return DatasetInfo(
            name="tiny_imagenet",
            channels=TINY_IMAGENET_CHANNELS,
            image_size=TINY_IMAGENET_SIZE,
            num_classes=len(class_names),
            mean=TINY_IMAGENET_MEAN,
            std=TINY_IMAGENET_STD,
            class_names=class_names,
            dsa_strategy=DEFAULT_DSA_STRATEGY,
        )
    return readers.image_folder_info(path)


def load_split(name: str, root: str | Path | None, train: bool, download: bool = False) -> LabeledImages:
    """Load one split of a registered dataset into memory.

    Layouts are tried in this order (the first that exists wins):

    1. the original format under ``root`` (read by torchvision's dataset class where torchvision can read the
       files as they are: MNIST, FashionMNIST; by our own readers of the same formats for CIFAR-10/100 and SVHN,
       whose torchvision classes insist on the official md5 sums; Tiny ImageNet's official ``train/`` + ``val/``);
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
    check_dataset_name(name)
    if name == "digits":
        return _load_digits(train)
    from lightning_dd.data import readers

    return readers.load_registered_split(name, require_root(name, root), train=train, download=download)


def _load_digits(train: bool) -> LabeledImages:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
    index = np.arange(pixels.shape[0])
    keep = (index % 5 != 4) if train else (index % 5 == 4)
    images = torch.from_numpy(np.ascontiguousarray(pixels[keep])).unsqueeze(1)
    labels = torch.from_numpy(np.asarray(bunch.target)[keep].astype(np.int64))
    return LabeledImages(images=images, labels=labels, class_names=_DIGIT_NAMES)


def normalize(images: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """Normalize images per channel, on their own device.

    Args:
        images: ``(..., C, H, W)``; ``uint8`` in ``[0, 255]`` (divided by 255 first) or floating point in ``[0, 1]``.
        mean: ``C`` per-channel means.
        std: ``C`` per-channel standard deviations.

    Returns:
        ``float32`` tensor of the same shape: ``(x - mean) / std`` with ``x = images / 255`` for ``uint8`` input.
    """
    if images.dim() < 3:
        raise ValueError(f"images must be (..., C, H, W), got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        x = images.to(torch.float32).div_(255.0)
    elif images.is_floating_point():
        x = images.to(torch.float32)
    else:
        raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).reshape(-1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).reshape(-1, 1, 1)
    channels = x.shape[-3]
    if m.shape[0] != channels or s.shape[0] != channels:
        raise ValueError(f"mean/std have {m.shape[0]}/{s.shape[0]} values for {channels}-channel images")
    return (x - m) / s
