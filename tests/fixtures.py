"""Tiny deterministic datasets written in their ORIGINAL on-disk formats, for tests.

Every writer takes the folder to use as the dataset ``root`` and returns the expected contents,
``{"train": Expected, "test": Expected}`` with ``Expected.images`` ``uint8 (N, C, H, W)`` and ``Expected.labels``
``int64 (N,)`` in the order the library's readers return them (lossless formats: exact pixels; JPEG: the pixels
before compression).

* :func:`write_cifar10`: ``root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`` (python pickles).
* :func:`write_cifar100`: ``root/cifar-100-python/{train,test,meta}``.
* :func:`write_mnist`: ``root/MNIST/raw/*-ubyte`` (or ``root/FashionMNIST/raw``) idx files, optionally ``.gz`` only.
* :func:`write_svhn`: ``root/{train,test}_32x32.mat`` (``X`` ``(32, 32, 3, N)`` uint8, ``y`` ``(N, 1)``, 10 = digit 0).
* :func:`write_image_folder`: ``root/train/<class>/*`` and ``root/test/<class>/*``.
* :func:`write_tiny_imagenet`: ``root/tiny-imagenet-200/{wnids.txt, words.txt, train/<wnid>/images/*.JPEG,
  train/<wnid>/<wnid>_boxes.txt, val/images/*.JPEG, val/val_annotations.txt, test/images/*.JPEG}``.

The official CIFAR/SVHN files carry md5 sums that torchvision checks; fixtures cannot match them (they are re-packed
copies), so the library reads them with its own readers of the same formats, as it does every re-packed copy, while
the official files go through torchvision's classes (see ``lightning_dd/data/datasets/{cifar10,cifar100,svhn}.py``).
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_COARSE = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes", "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates",
    "people", "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)  # fmt: skip
TINY_WNIDS = ("n02124075", "n01443537", "n04067472")  # deliberately not sorted in wnids.txt


@dataclass
class Expected:
    """Expected split contents: ``images`` ``uint8 (N, C, H, W)``, ``labels`` ``int64 (N,)``."""

    images: np.ndarray
    labels: np.ndarray


def _balanced_labels(num_classes: int, per_class: int, rng: np.random.Generator) -> np.ndarray:
    labels = np.repeat(np.arange(num_classes, dtype=np.int64), per_class)
    return labels[rng.permutation(labels.size)]


def _noise(rng: np.random.Generator, n: int, c: int, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def _smooth(rng: np.random.Generator, n: int, c: int, h: int, w: int) -> np.ndarray:
    """Images that survive JPEG almost unchanged: a random flat colour plus a gentle horizontal ramp."""
    base = rng.integers(40, 200, size=(n, c, 1, 1)).astype(np.int64)
    ramp = np.linspace(0, 30, w).astype(np.int64)[None, None, None, :]
    return np.clip(base + ramp, 0, 255).astype(np.uint8).repeat(h, axis=2)


def _pickle(path: Path, obj: object) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


# ---------------------------------------------------------------------------------------------------------- CIFAR


def write_cifar10(root: str | Path, train_per_class: int = 2, test_per_class: int = 1, seed: int = 0) -> dict:
    """Write ``root/cifar-10-batches-py`` with ``10 * train_per_class`` train images spread over 5 batches."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = _balanced_labels(10, per_class, rng)
        images = _noise(rng, labels.size, 3, 32, 32)
        out[split] = Expected(images, labels)
        if split == "train":
            parts = np.array_split(np.arange(labels.size), 5)
            names = [f"data_batch_{i}" for i in range(1, 6)]
            batch_labels = [f"training batch {i} of 5" for i in range(1, 6)]
        else:
            parts, names, batch_labels = [np.arange(labels.size)], ["test_batch"], ["testing batch 1 of 1"]
        for idx, name, batch_label in zip(parts, names, batch_labels, strict=True):
            _pickle(
                folder / name,
                {
                    "batch_label": batch_label,
                    "labels": [int(v) for v in labels[idx]],
                    "data": images[idx].reshape(len(idx), 3072),
                    "filenames": [f"fixture_{int(i):05d}.png" for i in idx],
                },
            )
    _pickle(
        folder / "batches.meta",
        {"num_cases_per_batch": max(1, len(parts[0])), "label_names": list(CIFAR10_CLASSES), "num_vis": 3072},
    )
    return out


def write_cifar100(
    root: str | Path,
    fine_names: Sequence[str] | None = None,
    train_per_class: int = 1,
    test_per_class: int = 1,
    seed: int = 0,
) -> dict:
    """Write ``root/cifar-100-python/{train,test,meta}`` (coarse labels are ``fine // 5``, not the real mapping).

    ``fine_names`` defaults to the registry's CIFAR-100 class names (torchvision's order).
    """
    if fine_names is None:
        from lightning_dd.data import dataset_info

        fine_names = dataset_info("cifar100").class_names
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = _balanced_labels(100, per_class, rng)
        images = _noise(rng, labels.size, 3, 32, 32)
        out[split] = Expected(images, labels)
        _pickle(
            folder / split,
            {
                "filenames": [f"fixture_{i:05d}.png" for i in range(labels.size)],
                "batch_label": f"{split}ing batch 1 of 1",
                "fine_labels": [int(v) for v in labels],
                "coarse_labels": [int(v) // 5 for v in labels],
                "data": images.reshape(labels.size, 3072),
            },
        )
    _pickle(folder / "meta", {"fine_label_names": list(fine_names), "coarse_label_names": list(CIFAR100_COARSE)})
    return out


# ---------------------------------------------------------------------------------------------------------- MNIST


def _idx_images(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">iiii", 0x00000803, n, h, w) + images.astype(np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">ii", 0x00000801, labels.size) + labels.astype(np.uint8).tobytes()


def write_mnist(
    root: str | Path,
    fashion: bool = False,
    train_per_class: int = 2,
    test_per_class: int = 1,
    gzip_only: bool = False,
    seed: int = 0,
) -> dict:
    """Write MNIST (or FashionMNIST) idx files under ``root/MNIST/raw`` (``root/FashionMNIST/raw``).

    ``gzip_only=True`` writes only the ``.gz`` files, as downloaded before extraction; otherwise the decompressed
    files torchvision reads (and their ``.gz``).
    """
    rng = np.random.default_rng(seed)
    raw = Path(root) / ("FashionMNIST" if fashion else "MNIST") / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, per_class in (("train", "train", train_per_class), ("test", "t10k", test_per_class)):
        labels = _balanced_labels(10, per_class, rng)
        images = _noise(rng, labels.size, 1, 28, 28)
        out[split] = Expected(images, labels)
        for name, payload in (
            (f"{prefix}-images-idx3-ubyte", _idx_images(images[:, 0])),
            (f"{prefix}-labels-idx1-ubyte", _idx_labels(labels)),
        ):
            with gzip.GzipFile(raw / f"{name}.gz", "wb", mtime=0) as fh:
                fh.write(payload)
            if not gzip_only:
                (raw / name).write_bytes(payload)
    return out


# ---------------------------------------------------------------------------------------------------------- SVHN


def write_svhn(root: str | Path, train_per_class: int = 2, test_per_class: int = 1, seed: int = 0) -> dict:
    """Write ``root/train_32x32.mat`` and ``root/test_32x32.mat`` (label 10 stands for digit 0)."""
    import scipy.io as sio

    rng = np.random.default_rng(seed)
    Path(root).mkdir(parents=True, exist_ok=True)
    out = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = _balanced_labels(10, per_class, rng)
        images = _noise(rng, labels.size, 3, 32, 32)
        out[split] = Expected(images, labels)
        x = np.ascontiguousarray(images.transpose(2, 3, 1, 0))  # (N, C, H, W) -> (H, W, C, N)
        y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
        sio.savemat(str(Path(root) / f"{split}_32x32.mat"), {"X": x, "y": y})
    return out


# ---------------------------------------------------------------------------------------------------------- folders


def _save(path: Path, chw: np.ndarray, quality: int = 95) -> None:
    arr = chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0)
    img = Image.fromarray(np.ascontiguousarray(arr))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.save(path, format="JPEG", quality=quality)
    else:
        img.save(path)


def write_image_folder(
    root: str | Path,
    class_names: Sequence[str],
    train_per_class: int = 2,
    test_per_class: int = 1,
    size: tuple[int, int] = (8, 8),
    channels: int = 3,
    ext: str = ".png",
    folder_order: Sequence[str] | None = None,
    seed: int = 0,
) -> dict:
    """Write ``root/train/<class>/<i>.<ext>`` and ``root/test/<class>/<i>.<ext>``.

    ``class_names`` is the label order of the returned expectation; ``folder_order`` (default: the same) is the order
    in which the class folders are created. PNG/BMP are lossless; ``.jpg`` images are smooth so that JPEG changes them
    only slightly.
    """
    rng = np.random.default_rng(seed)
    order = list(folder_order) if folder_order is not None else list(class_names)
    lossy = ext.lower() in (".jpg", ".jpeg")
    out = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        make = _smooth if lossy else _noise
        images = make(rng, len(class_names) * per_class, channels, *size)
        labels = np.repeat(np.arange(len(class_names), dtype=np.int64), per_class)
        out[split] = Expected(images, labels)
        for name in order:
            c = list(class_names).index(name)
            for i in range(per_class):
                _save(Path(root) / split / name / f"{i:04d}{ext}", images[c * per_class + i])
    return out


def write_tiny_imagenet(
    root: str | Path,
    wnids: Sequence[str] = TINY_WNIDS,
    train_per_class: int = 2,
    val_per_class: int = 1,
    seed: int = 0,
) -> dict:
    """Write the official Tiny ImageNet layout under ``root/tiny-imagenet-200`` (64x64 JPEGs).

    Expected labels follow the sorted wnids; the first train image of the first wnid in ``wnids.txt`` order is stored
    as a grayscale JPEG (the real set has some), its expectation being the grayscale value repeated over RGB.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / "tiny-imagenet-200"
    (base / "train").mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids))
    (base / "words.txt").write_text("".join(f"{w}\tfixture class {w}\n" for w in wnids))
    order = sorted(wnids)
    train_images: list[np.ndarray] = []
    train_labels: list[int] = []
    for w in order:
        imgs = _smooth(rng, train_per_class, 3, 64, 64)
        if w == wnids[0]:
            gray = np.asarray(Image.fromarray(imgs[0].transpose(1, 2, 0)).convert("L"))
            imgs[0] = np.repeat(gray[None], 3, axis=0)
        boxes = []
        for i in range(train_per_class):
            name = f"{w}_{i}.JPEG"
            if w == wnids[0] and i == 0:
                _save(base / "train" / w / "images" / name, imgs[0][:1])
            else:
                _save(base / "train" / w / "images" / name, imgs[i])
            boxes.append(f"{name}\t0\t0\t63\t63\n")
        (base / "train" / w / f"{w}_boxes.txt").write_text("".join(boxes))
        train_images.append(imgs)
        train_labels += [order.index(w)] * train_per_class
    n_val = val_per_class * len(wnids)
    val_images = _smooth(rng, n_val, 3, 64, 64)
    val_labels = np.array([i % len(wnids) for i in range(n_val)], dtype=np.int64)
    lines = []
    for i in range(n_val):
        name = f"val_{i}.JPEG"
        _save(base / "val" / "images" / name, val_images[i])
        lines.append(f"{name}\t{order[val_labels[i]]}\t0\t0\t63\t63\n")
    (base / "val" / "val_annotations.txt").write_text("".join(reversed(lines)))  # order must not matter
    for i in range(2):
        _save(base / "test" / "images" / f"test_{i}.JPEG", _smooth(rng, 1, 3, 64, 64)[0])
    return {
        "train": Expected(np.concatenate(train_images), np.array(train_labels, dtype=np.int64)),
        "test": Expected(val_images, val_labels),
    }
