"""Tiny ImageNet (200 classes of 64x64 JPEGs); the test split is the official ``val/``.

Layouts (:class:`TinyImageNetSpec`), in order:

1. the official layout ``root/tiny-imagenet-200/`` (or ``root`` itself) with ``wnids.txt``,
   ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` and ``val/val_annotations.txt``;
2. ``root/{train,test}/<wnid>/*`` and 3. ``root/tiny_imagenet/{train,test}/<wnid>/*`` (image folders).

Class names are the sorted WordNet ids: from ``wnids.txt``, else the ``train/`` sub-folders of an image-folder copy,
so :meth:`TinyImageNetSpec.info` reads ``root``. Statistics are ImageNet's (as in the VICO/MTT code). torchvision has
no Tiny ImageNet class, so our reader decodes the files (:func:`read_tiny_imagenet`, cached); ``download`` fetches
the official zip with torchvision's ``download_and_extract_archive``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from lightning_dd.data.cache import cached, fingerprint
from lightning_dd.data.datasets.base import FileDatasetSpec, Reader, Split
from lightning_dd.data.decode import decode_images, list_images, natural_key, subfolders
from lightning_dd.data.types import DEFAULT_DSA_STRATEGY, DatasetInfo, LabeledImages

__all__ = [
    "TINY_IMAGENET_CHANNELS",
    "TINY_IMAGENET_MEAN",
    "TINY_IMAGENET_NUM_CLASSES",
    "TINY_IMAGENET_SIZE",
    "TINY_IMAGENET_STD",
    "TinyImageNetSpec",
    "read_tiny_imagenet",
    "tiny_imagenet_class_names",
]

log = logging.getLogger(__name__)

#: Shape and statistics of Tiny ImageNet (ImageNet statistics, as in the VICO/MTT code); class names come from files.
TINY_IMAGENET_CHANNELS = 3
TINY_IMAGENET_SIZE = (64, 64)
TINY_IMAGENET_MEAN = (0.485, 0.456, 0.406)
TINY_IMAGENET_STD = (0.229, 0.224, 0.225)
TINY_IMAGENET_NUM_CLASSES = 200
_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def _original_dir(root: Path) -> Path | None:
    for cand in (root / "tiny-imagenet-200", root):
        if (cand / "wnids.txt").is_file() and (cand / "train").is_dir():
            return cand
    return None


def tiny_imagenet_class_names(root: str | Path) -> tuple[str, ...]:
    """Sorted Tiny ImageNet class ids: from ``wnids.txt`` of the official layout, else the image-folder sub-folders.

    Raises:
        FileNotFoundError: no Tiny ImageNet layout under ``root`` (the message lists the layouts searched).
    """
    root = Path(root).expanduser().absolute()
    original = _original_dir(root)
    if original is not None:
        wnids = [w.strip() for w in (original / "wnids.txt").read_text().split()]
        return tuple(sorted(w for w in wnids if w))
    spec = TinyImageNetSpec()
    for base in spec.copies(root):
        split_dir = base / "train"
        if split_dir.is_dir() and subfolders(split_dir):
            return tuple(subfolders(split_dir))
    raise spec.not_found(root, spec.find(root, "train").searched)


def read_tiny_imagenet(folder: str | Path, train: bool, class_names: Sequence[str]) -> LabeledImages:
    """Read the official Tiny ImageNet layout at ``folder`` (the ``tiny-imagenet-200`` directory), cached.

    Train: ``train/<wnid>/images/*.JPEG`` for each wnid in ``class_names`` order. Test: ``val/images/*.JPEG``
    labelled by ``val/val_annotations.txt`` (``<file>\\t<wnid>\\t...``). Files in natural name order; grayscale
    JPEGs are converted to RGB; every image must be 64x64.

    Returns:
        :class:`LabeledImages` (``uint8 (N, 3, 64, 64)``, ``int64 (N,)``).

    Raises:
        FileNotFoundError: a class folder is missing. ValueError: an annotation names an unknown class.
    """
    folder = Path(folder).expanduser().absolute()
    class_names = tuple(class_names)
    paths: list[Path] = []
    labels: list[int] = []
    extra_files: list[Path] = []
    if train:
        for label, wnid in enumerate(class_names):
            images_dir = folder / "train" / wnid / "images"
            if not images_dir.is_dir():
                raise FileNotFoundError(f"Tiny ImageNet class folder missing: {images_dir}")
            files = list_images(images_dir)
            paths.extend(files)
            labels.extend([label] * len(files))
    else:
        annotations = folder / "val" / "val_annotations.txt"
        extra_files.append(annotations)
        index = {w: i for i, w in enumerate(class_names)}
        rows: list[tuple[list[str | int], Path, int]] = []
        for line_no, line in enumerate(annotations.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2 or parts[1] not in index:
                raise ValueError(f"{annotations}:{line_no}: unknown class in {line!r}")
            rows.append((natural_key(parts[0]), folder / "val" / "images" / parts[0], index[parts[1]]))
        rows.sort(key=lambda r: r[0])
        paths = [r[1] for r in rows]
        labels = [r[2] for r in rows]
    key = fingerprint(paths + extra_files, kind="tiny_imagenet", folder=str(folder), train=train, classes=class_names)

    def build() -> LabeledImages:
        log.info("Decoding %d Tiny ImageNet images from %s", len(paths), folder)
        images = decode_images(paths, 3, TINY_IMAGENET_SIZE)
        return LabeledImages(images, torch.tensor(labels, dtype=torch.int64), class_names)

    return cached(key, build)


class TinyImageNetSpec(FileDatasetSpec):
    """Tiny ImageNet (``3x64x64``, classes from the files): layouts and reader as described in :mod:`.tiny_imagenet`."""

    name = "tiny_imagenet"
    info_needs_root = True

    def info(self, root: Path | None = None) -> DatasetInfo:
        class_names = tiny_imagenet_class_names(self._root(root))
        return DatasetInfo(
            name=self.name,
            channels=TINY_IMAGENET_CHANNELS,
            image_size=TINY_IMAGENET_SIZE,
            num_classes=len(class_names),
            mean=TINY_IMAGENET_MEAN,
            std=TINY_IMAGENET_STD,
            class_names=class_names,
            dsa_strategy=DEFAULT_DSA_STRATEGY,
        )

    def originals(self, root: Path, split: Split) -> list[tuple[str, Reader | None]]:
        text = (
            f"original format: {root}/tiny-imagenet-200/ (or {root} itself) with wnids.txt, "
            "train/<wnid>/images/*.JPEG, val/images/*.JPEG, val/val_annotations.txt"
        )
        folder = _original_dir(root)
        train = split == "train"
        if folder is None or not (train or (folder / "val" / "val_annotations.txt").is_file()):
            return [(text, None)]
        found: Path = folder
        return [(text, lambda: read_tiny_imagenet(found, train, tiny_imagenet_class_names(root)))]

    def advice(self) -> str:
        return (
            "To get the files: pass download=True (command line: --data.download true) to download the official "
            "tiny-imagenet-200.zip into root, or put an image-folder copy at root/train/<class>/* and "
            f"root/test/<class>/* (or under root/{self.name}/) whose folder names are the dataset's class names."
        )

    def download_original(self, root: Path) -> None:
        from torchvision.datasets.utils import download_and_extract_archive

        download_and_extract_archive(_URL, str(root))
