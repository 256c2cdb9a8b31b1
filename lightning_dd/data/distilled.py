"""The evaluation DataModule: train on a distilled artifact, validate/test on the real test split."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_dd.artifact import DistilledSet
from lightning_dd.data.registry import load_split, normalize
from lightning_dd.seeding import STREAM_EVAL, make_generator


class DistilledDataModule(L.LightningDataModule):
    """Train split = a :class:`DistilledSet` (hard labels, plus soft labels when it has them); val/test = the real
    test split of the artifact's dataset, normalised with the artifact's mean/std.

    Args:
        distilled: path of an artifact written by ``DistilledSet.save`` (or the object itself).
        root: data root of the real dataset (not needed for the embedded ``digits``).
        download: allow torchvision to download the real test split.
        batch_size: training batch size (the protocol's 256).
        test_batch_size: evaluation batch size.
        seed: seeds the training shuffle.

    Batches: train ``(images (B, C, H, W) float32, labels (B,) int64[, soft_labels (B, K)])``;
    test ``(images, labels)``.
    """

    def __init__(
        self,
        distilled: str | DistilledSet,
        root: str | None = None,
        download: bool = False,
        batch_size: int = 256,
        test_batch_size: int = 1024,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.distilled = distilled if isinstance(distilled, DistilledSet) else DistilledSet.load(Path(distilled))
        self.root = root
        self.download = download
        self.batch_size = batch_size
        self.test_batch_size = test_batch_size
        self.seed = seed
        self._test: TensorDataset | None = None

    @property
    def num_classes(self) -> int:
        return self.distilled.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.distilled.image_shape

    def setup(self, stage: str | None = None) -> None:
        if self._test is None and stage in (None, "fit", "validate", "test"):
            split = load_split(self.distilled.dataset, self.root, train=False, download=self.download)
            images = normalize(split.images, self.distilled.mean, self.distilled.std)
            self._test = TensorDataset(images, split.labels)

    def train_dataloader(self) -> DataLoader:
        d = self.distilled
        tensors = [d.images, d.labels] + ([d.soft_labels] if d.soft_labels is not None else [])
        generator = make_generator(self.seed, STREAM_EVAL)
        return DataLoader(TensorDataset(*tensors), batch_size=self.batch_size, shuffle=True, generator=generator)

    def val_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def test_dataloader(self) -> DataLoader:
        if self._test is None:
            self.setup("test")
        assert self._test is not None
        return DataLoader(self._test, batch_size=self.test_batch_size)

    def test_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalised real test split as ``(images (N, C, H, W), labels (N,))``."""
        if self._test is None:
            self.setup("test")
        assert self._test is not None
        return self._test.tensors[0], self._test.tensors[1]
