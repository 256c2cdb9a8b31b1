"""Image-folder layouts: ``<split_dir>/<class>/**/*.{jpg,jpeg,png,bmp}`` read into :class:`LabeledImages`.

Used for the ``image_folder`` dataset (classes = sorted ``root/train`` sub-folders, statistics from the train images)
and for image-folder copies of every registered dataset (class folders named exactly as the registry's classes,
labels in the registry's order). Files are listed in natural order (:func:`~lightning_dd.data.decode.list_images`),
decoded by :func:`~lightning_dd.data.decode.decode_images` and cached (:mod:`lightning_dd.data.cache`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightning_dd.data.cache import cached, fingerprint, load_json_entry, store_json_entry
from lightning_dd.data.decode import IMAGE_EXTENSIONS, all_grayscale, decode_images, list_images, subfolders
from lightning_dd.data.types import DEFAULT_DSA_STRATEGY, DatasetInfo, LabeledImages

__all__ = [
    "IMAGE_FOLDER_ADVICE",
    "channel_stats",
    "image_folder_info",
    "image_folder_text",
    "not_found_message",
    "read_image_folder",
]

log = logging.getLogger(__name__)

EXTS_TEXT = "{" + ",".join(e.lstrip(".") for e in IMAGE_EXTENSIONS) + "}"

#: Last line of the not-found message of the ``image_folder`` dataset.
IMAGE_FOLDER_ADVICE = (
    "The 'image_folder' dataset needs root/train/<class>/* and root/test/<class>/* (same class folders)."
)


def image_folder_text(split_dir: Path) -> str:
    """How the image-folder layout at ``split_dir`` is named in not-found messages."""
    return f"image folder: {split_dir}/<class>/*.{EXTS_TEXT}"


def not_found_message(name: str, root: Path, searched: Sequence[str], advice: str) -> str:
    """Text of the ``FileNotFoundError`` of dataset ``name``: ``root``, each layout searched (numbered), ``advice``."""
    lines = [f"Dataset {name!r} not found under root {str(root)!r}. Layouts searched, in order:"]
    lines += [f"  {i}. {text}" for i, text in enumerate(searched, 1)]
    lines.append(advice)
    return "\n".join(lines)


@dataclass
class _Listing:
    paths: list[Path]
    labels: Tensor
    class_names: tuple[str, ...]


def _list_image_folder(split_dir: Path, class_names: Sequence[str] | None) -> _Listing:
    folders = subfolders(split_dir)
    if class_names is None:
        class_names = tuple(folders)
        if not class_names:
            raise FileNotFoundError(f"No class sub-folders in {split_dir} (expected {split_dir}/<class>/*)")
    else:
        class_names = tuple(class_names)
        missing = [c for c in class_names if c not in folders]
        unexpected = [f for f in folders if f not in class_names]
        if missing or unexpected:
            raise ValueError(
                f"Class folders of {split_dir} do not match the dataset's {len(class_names)} classes: "
                f"missing folders {missing}, unexpected folders {unexpected}. The folder names must be exactly: "
                f"{', '.join(class_names)}"
            )
    paths: list[Path] = []
    labels: list[int] = []
    empty: list[str] = []
    for label, name in enumerate(class_names):
        files = list_images(split_dir / name)
        if not files:
            empty.append(name)
        paths.extend(files)
        labels.extend([label] * len(files))
    if empty:
        raise ValueError(f"Class folders without images ({EXTS_TEXT}) in {split_dir}: {empty}")
    return _Listing(paths, torch.tensor(labels, dtype=torch.int64), class_names)


def read_image_folder(
    split_dir: str | Path,
    class_names: Sequence[str] | None = None,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
) -> LabeledImages:
    """Read ``split_dir/<class>/**/*.{jpg,jpeg,png,bmp}`` (cached).

    Args:
        split_dir: folder with one sub-folder per class.
        class_names: required class order; the sub-folders must be exactly these names (``ValueError`` naming the
            missing and unexpected folders otherwise). ``None``: the sorted sub-folder names.
        channels: 1 or 3; ``None``: 1 if every image is grayscale, else 3 (RGB).
        size: required ``(H, W)``; ``None``: the size of the first image.

    Returns:
        :class:`LabeledImages` (``uint8 (N, C, H, W)``, ``int64 (N,)``), classes in order, files in natural order.
    """
    split_dir = Path(split_dir).expanduser().absolute()
    listing = _list_image_folder(split_dir, class_names)
    key = fingerprint(
        listing.paths,
        kind="image_folder",
        folder=str(split_dir),
        classes=listing.class_names,
        channels=channels,
        size=size,
    )

    def build() -> LabeledImages:
        ch = channels
        if ch is None:
            ch = 1 if all_grayscale(listing.paths) else 3
        log.info("Decoding %d images from %s", len(listing.paths), split_dir)
        images = decode_images(listing.paths, ch, size)
        return LabeledImages(images=images, labels=listing.labels, class_names=listing.class_names)

    return cached(key, build)


_IMAGE_FOLDER_INFO: dict[str, DatasetInfo] = {}


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel population mean/std of ``images / 255`` (``uint8 (N, C, H, W)``), accumulated in float64."""
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, images.shape[0], 4096):
        x = images[start : start + 4096].to(torch.float64).div_(255.0)
        total += x.sum(dim=(0, 2, 3))
        total_sq += x.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _info_from_sidecar(raw: Any, class_names: tuple[str, ...]) -> DatasetInfo | None:
    if raw is None:
        return None
    try:
        return DatasetInfo(
            name="image_folder",
            channels=int(raw["channels"]),
            image_size=(int(raw["image_size"][0]), int(raw["image_size"][1])),
            num_classes=len(class_names),
            mean=tuple(float(v) for v in raw["mean"]),
            std=tuple(float(v) for v in raw["std"]),
            class_names=class_names,
            dsa_strategy=DEFAULT_DSA_STRATEGY,
        )
    except Exception as err:
        log.warning("Ignoring unusable statistics cache entry %r (%s)", raw, err)
        return None


def image_folder_info(root: str | Path) -> DatasetInfo:
    """:class:`DatasetInfo` of the ``image_folder`` dataset at ``root`` (classes = sorted ``root/train`` folders).

    Channels, size and mean/std come from the decoded train split (see :func:`read_image_folder`). They are computed
    once per folder state and cached in-process and as ``<key>.info.json`` next to the decoded-tensor cache, so a
    repeated call only lists and stats the files.

    Raises:
        FileNotFoundError: no ``root/train`` folder (the message names the layout searched).
        ValueError: an image cannot be decoded or has another size than the first one (the message names the file).
    """
    root = Path(root).expanduser().absolute()
    split_dir = root / "train"
    if not split_dir.is_dir():
        raise FileNotFoundError(
            not_found_message("image_folder", root, [image_folder_text(split_dir)], IMAGE_FOLDER_ADVICE)
        )
    listing = _list_image_folder(split_dir, None)
    key = fingerprint(listing.paths, kind="image_folder_info", folder=str(split_dir), classes=listing.class_names)
    if key in _IMAGE_FOLDER_INFO:
        return _IMAGE_FOLDER_INFO[key]
    info = _info_from_sidecar(load_json_entry(key, ".info.json"), listing.class_names)
    if info is None:
        train = read_image_folder(split_dir)
        mean, std = channel_stats(train.images)
        info = DatasetInfo(
            name="image_folder",
            channels=int(train.images.shape[1]),
            image_size=(int(train.images.shape[2]), int(train.images.shape[3])),
            num_classes=len(train.class_names),
            mean=mean,
            std=std,
            class_names=train.class_names,
            dsa_strategy=DEFAULT_DSA_STRATEGY,
        )
        store_json_entry(
            key, ".info.json", {"channels": info.channels, "image_size": info.image_size, "mean": mean, "std": std}
        )
    _IMAGE_FOLDER_INFO[key] = info
    return info
