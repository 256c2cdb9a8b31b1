"""The evaluation DataModule: train on a distilled artifact, validate/test on the real test split.

Both sides are in the artifact's evaluation space (``lightning_dd.data.spaces``): a ``pixels`` set is normalised
with its mean/std, a ``zca`` set stays whitened and the test split is whitened with the artifact's ZCA.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_dd.artifact import DistilledSet
from lightning_dd.augment.zca import ZCA
from lightning_dd.data.registry import dataset_info, load_split
from lightning_dd.data.spaces import as_zca, check_artifact_space, encode, evaluation_space, to_evaluation_space
from lightning_dd.data.types import LabeledImages
from lightning_dd.seeding import STREAM_EVAL, make_generator
from lightning_dd.synthetic import ImageSpace


class DistilledDataModule(L.LightningDataModule):
    """Train split = a :class:`DistilledSet` (hard labels, plus soft labels when it has them); val/test = the real
    test split of the artifact's dataset; both in the artifact's evaluation space (:attr:`evaluation_space`:
    ``normalized`` for ``normalized``/``pixels`` sets, normalised with the artifact's mean/std; ``zca`` for ``zca``
    sets, the test split whitened with the ZCA rebuilt from ``artifact.zca``).

    Args:
        distilled: path of an artifact written by ``DistilledSet.save`` (or the object itself).
        root: data root of the real dataset (not needed for the embedded ``digits``).
        download: allow torchvision to download the real test split.
        batch_size: training batch size (the protocol's 256).
        test_batch_size: evaluation batch size.
        seed: seeds the training shuffle.

    Batches: train ``(images (B, C, H, W) float32, labels (B,) int64[, soft_labels (B, K)])``;
    test ``(images, labels)``.

    Raises:
        ValueError: at construction, for an artifact whose space cannot be evaluated (unknown space, ``zca``
            without valid ZCA state, ZCA state on a non-``zca`` set); at setup, a test split of another image shape.
    """

    def __init__(
        self,
        distilled: str | DistilledSet,
        root: str | None = None,
        download: bool = False,
        batch_size: int = 256,
        test_batch_size: int = 1024,
        seed: int = 0,
        test: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.distilled = distilled if isinstance(distilled, DistilledSet) else DistilledSet.load(Path(distilled))
        self.space: ImageSpace = check_artifact_space(self.distilled)
        self.zca: ZCA | None = as_zca(self.distilled.zca) if self.space == "zca" else None
        self.root = root
        self.download = download
        self.batch_size = batch_size
        self.test_batch_size = test_batch_size
        self.seed = seed
        self._own_test = test
        self._test: TensorDataset | None = None
        self._train_images: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return self.distilled.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.distilled.image_shape

    @property
    def evaluation_space(self) -> ImageSpace:
        """The space the student's train and test images are in (``normalized`` or ``zca``)."""
        return evaluation_space(self.space)

    def setup(self, stage: str | None = None) -> None:
        if self._test is None and stage in (None, "fit", "validate", "test"):
            d = self.distilled
            if self._own_test is not None:  # the user's own test split: only its shape and labels can be checked
                from lightning_dd.data.tensors import checked_images, checked_labels

                own_images = checked_images(self._own_test[0], "test images")
                own_labels = checked_labels(self._own_test[1], own_images.shape[0], "test labels", d.num_classes)
                split = LabeledImages(own_images, own_labels, class_names=d.class_names)
            else:
                info = dataset_info(d.dataset, self.root)  # what the data under root is, before reading its images
                where = f"{d.dataset} data" + (f" under {self.root}" if self.root else "")
                d.check_data(info.name, tuple(info.class_names), tuple(info.mean), tuple(info.std),
                             tuple(info.image_shape), where)
                split = load_split(d.dataset, self.root, train=False, download=self.download)
            if tuple(split.images.shape[1:]) != d.image_shape:
                raise ValueError(f"the {d.dataset!r} test split has images {tuple(split.images.shape[1:])}, the "
                                 f"distilled set {d.image_shape}")
            images = encode(split.images, self.evaluation_space, d.mean, d.std, self.zca)
            self._test = TensorDataset(images, split.labels)

    def train_images(self) -> torch.Tensor:
        """The artifact's images in the evaluation space, float32 ``(n, C, H, W)`` (computed once)."""
        if self._train_images is None:
            d = self.distilled
            self._train_images = to_evaluation_space(d.images.detach(), self.space, d.mean, d.std, self.zca)
        return self._train_images

    def train_dataloader(self) -> DataLoader:
        d = self.distilled
        tensors = [self.train_images(), d.labels] + ([d.soft_labels] if d.soft_labels is not None else [])
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
        """The real test split in the evaluation space, ``(images (N, C, H, W) float32, labels (N,) int64)``."""
        if self._test is None:
            self.setup("test")
        assert self._test is not None
        return self._test.tensors[0], self._test.tensors[1]
