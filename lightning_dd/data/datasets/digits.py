"""``digits``: the embedded default dataset, scikit-learn's 8x8 handwritten digits (no files, no ``root``).

``sklearn.datasets.load_digits()`` (1 797 images, 8x8, values 0..16) converted to ``uint8`` with
``round(v * 255 / 16)``. Its split is fixed and version independent: sample ``i`` (in ``load_digits`` order) is in
the test split iff ``i % 5 == 4``, so the train split has 1 438 images and the test split 359. Classes ``"0"``..``"9"``.
There is nothing to find on disk or to download; torchvision is not involved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lightning_dd.data.datasets.base import DatasetSpec, Lookup, Split, check_split
from lightning_dd.data.types import DIGIT_DSA_STRATEGY, DatasetInfo, LabeledImages, fixed_info

__all__ = ["INFO", "DigitsSpec", "load_digits_split"]

# Computed once from the train split (i % 5 != 4) of uint8 round(v*255/16) images, x/255, population statistics;
# tests/data recompute and compare to 1e-4.
INFO: DatasetInfo = fixed_info(
    "digits", 1, 8, (0.305855,), (0.376279,), tuple(str(d) for d in range(10)), DIGIT_DSA_STRATEGY
)

_SOURCE = "embedded: sklearn.datasets.load_digits() (no files)"


def load_digits_split(train: bool) -> LabeledImages:
    """The embedded digits split: ``uint8 (1438 | 359, 1, 8, 8)`` images, ``int64`` labels (see :mod:`.digits`)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
    index = np.arange(pixels.shape[0])
    keep = (index % 5 != 4) if train else (index % 5 == 4)
    images = torch.from_numpy(np.ascontiguousarray(pixels[keep])).unsqueeze(1)
    labels = torch.from_numpy(np.asarray(bunch.target)[keep].astype(np.int64))
    return LabeledImages(images=images, labels=labels, class_names=INFO.class_names)


class DigitsSpec(DatasetSpec):
    """The embedded digits: always found, never downloaded; ``root`` is ignored."""

    name = "digits"
    needs_root = False

    def info(self, root: Path | None = None) -> DatasetInfo:
        return INFO

    def find(self, root: Path, split: Split) -> Lookup:
        train = check_split(split) == "train"
        return Lookup(lambda: load_digits_split(train), (_SOURCE,))

    def read(self, root: Path | None, split: Split, download: bool = False) -> LabeledImages:
        return load_digits_split(check_split(split) == "train")

    def fetch(self, root: Path) -> None:
        """Nothing to download."""

    def download(self, root: Path) -> None:
        """Nothing to download."""
