"""``image_folder``: any dataset stored as ``root/{train,test}/<class>/*.{jpg,jpeg,png,bmp}``.

Layout (:class:`ImageFolderSpec`): ``root/<split>/<class>/**/*`` only (no original format, nothing to download).
Classes are the sorted sub-folders of ``root/train`` and the test split must have the same class folders. Channels,
size and mean/std come from the decoded train images (:func:`~lightning_dd.data.image_folder.image_folder_info`: 1
channel only if every train image is grayscale; every image must have the size of the first one). Our reader
(natural file order, decoded-tensor cache), not torchvision's ``ImageFolder``.
"""

from __future__ import annotations

from pathlib import Path

from lightning_dd.data.datasets.base import DatasetSpec, Lookup, Split
from lightning_dd.data.image_folder import IMAGE_FOLDER_ADVICE, image_folder_info, image_folder_text, read_image_folder
from lightning_dd.data.types import DatasetInfo, LabeledImages

__all__ = ["ImageFolderSpec", "load_image_folder_dataset"]


def load_image_folder_dataset(root: Path, train: bool) -> LabeledImages:
    """One split of the ``image_folder`` dataset at ``root`` (classes, channels and size of the train split)."""
    info = image_folder_info(root)
    split_dir = root / ("train" if train else "test")
    if not split_dir.is_dir():
        raise ImageFolderSpec().not_found(root, (image_folder_text(split_dir),))
    if train:  # same cache key as the decode behind image_folder_info
        return read_image_folder(split_dir)
    return read_image_folder(split_dir, info.class_names, info.channels, info.image_size)


class ImageFolderSpec(DatasetSpec):
    """The generic image-folder dataset; its :meth:`info` scans (and the first time decodes) ``root/train``."""

    name = "image_folder"
    info_needs_root = True

    def info(self, root: Path | None = None) -> DatasetInfo:
        return image_folder_info(self._root(root))

    def find(self, root: Path, split: Split) -> Lookup:
        split_dir = root / split
        reader = (lambda: load_image_folder_dataset(root, split == "train")) if split_dir.is_dir() else None
        return Lookup(reader, (image_folder_text(split_dir),))

    def advice(self) -> str:
        return IMAGE_FOLDER_ADVICE

    def fetch(self, root: Path) -> None:
        """Nothing to download: the folders are the dataset."""

    def download(self, root: Path) -> None:
        """Nothing to download: the folders are the dataset."""
