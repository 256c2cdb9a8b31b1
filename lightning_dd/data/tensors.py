"""Your own data: a :class:`~lightning_dd.data.real.RealDataModule` over tensors in memory or a torch ``Dataset``.

``TensorDataModule(images, labels, test_images=..., test_labels=...)`` (or ``TensorDataModule.from_dataset(train,
test)``) gives every method and the in-run evaluator the same class-balanced batches,
statistics and test split as a registered dataset. Images are ``uint8 (N, C, H, W)`` or floats in ``[0, 1]``
(stored as 8-bit, rounded, like every registered dataset); per-channel mean/std are computed from the stored train
images unless given. The artifact records ``name`` as its
dataset; evaluate it later with your test tensors (``evaluate_artifact(..., test=(images, labels))``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from lightning_dd.data.image_folder import channel_stats
from lightning_dd.data.real import RealDataModule
from lightning_dd.data.registry import DatasetName
from lightning_dd.data.types import DEFAULT_DSA_STRATEGY, DatasetInfo, LabeledImages

__all__ = ["TensorDataModule", "checked_images", "checked_labels", "tensors_from_dataset"]


def checked_images(images: Tensor, what: str) -> Tensor:
    """``images`` as contiguous ``uint8 (N, C, H, W)``: uint8 as is, [0, 1] floats rounded to 8 bit."""
    if not isinstance(images, Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{what} must be a (N, C, H, W) tensor, got {shape}")
    if images.dtype == torch.uint8:
        return images.contiguous()
    if not images.is_floating_point():
        raise ValueError(f"{what} must be uint8 or floating point in [0, 1], got {images.dtype}")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise ValueError(f"{what} (floating point) must lie in [0, 1] (pixel units), got values in [{low}, {high}]")
    return (images.double() * 255).round().to(torch.uint8).contiguous()  # 8-bit, as every registered dataset


def checked_labels(labels: Tensor, n: int, what: str, num_classes: int | None = None) -> Tensor:
    """``labels`` as ``int64 (n,)`` class indices, in ``[0, num_classes)`` when ``num_classes`` is given."""
    labels = torch.as_tensor(labels).reshape(-1)
    if labels.is_floating_point() or labels.numel() != n:
        raise ValueError(f"{what} must be {n} integer class indices, got {labels.dtype} of {labels.numel()}")
    if num_classes is not None and n:
        low, high = int(labels.min()), int(labels.max())
        if not 0 <= low <= high < num_classes:
            raise ValueError(f"{what} must lie in [0, {num_classes}) ({num_classes} classes), got [{low}, {high}]")
    return labels.to(torch.int64)


class TensorDataModule(RealDataModule):
    """A :class:`RealDataModule` whose splits are tensors you hold.

    Args:
        images, labels: the train split, ``(N, C, H, W)`` uint8 or [0, 1] floats, ``(N,)`` class indices.
        test_images, test_labels: the test split (needed by evaluation; optional for distillation only).
        class_names: label-order names (default ``"0"``, ``"1"``, ...).
        mean, std: per-channel statistics of [0, 1] pixels (default: computed from the train images).
        name: what the artifact records as its dataset.
        dsa_strategy: the DSA strategy methods default to for this data.
        **kwargs: the other :class:`RealDataModule` arguments (``batch_real``, ``seed``, ``space``, ...).
    """

    _not_hyperparameters = ("images", "labels", "test_images", "test_labels")

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        test_images: Tensor | None = None,
        test_labels: Tensor | None = None,
        class_names: Sequence[str] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        name: str = "tensors",
        dsa_strategy: str = DEFAULT_DSA_STRATEGY,
        **kwargs: Any,
    ) -> None:
        train = checked_images(images, "images")
        train_labels = checked_labels(labels, train.shape[0], "labels")
        num_classes = len(class_names) if class_names is not None else int(train_labels.max()) + 1
        names = tuple(class_names) if class_names is not None else tuple(str(c) for c in range(num_classes))
        checked_labels(train_labels, train.shape[0], "labels", num_classes)
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither (then both are computed from the train images)")
        stats = (tuple(mean), tuple(std)) if mean is not None and std is not None else channel_stats(train)
        self._splits: dict[bool, LabeledImages] = {True: LabeledImages(train, train_labels, names)}
        if (test_images is None) != (test_labels is None):
            raise ValueError("give both test_images and test_labels, or neither")
        if test_images is not None and test_labels is not None:
            test = checked_images(test_images, "test_images")
            self._splits[False] = LabeledImages(test, checked_labels(test_labels, test.shape[0], "test_labels",
                                                                     num_classes), names)
        self._own_info = DatasetInfo(name=name, channels=int(train.shape[1]),
                                     image_size=(int(train.shape[2]), int(train.shape[3])), num_classes=num_classes,
                                     mean=stats[0], std=stats[1], class_names=names, dsa_strategy=dsa_strategy)
        # the registry's names type `dataset`; this subclass's source hooks replace the registry, any name goes
        super().__init__(dataset=cast(DatasetName, name), **kwargs)

    @classmethod
    def from_dataset(cls, train: Dataset[Any], test: Dataset[Any] | None = None, **kwargs: Any) -> TensorDataModule:
        """A map-style torch ``Dataset`` of ``(PIL image or (C, H, W) tensor, label)`` (+ its test split)."""
        images, labels = tensors_from_dataset(train)
        if test is not None:
            kwargs["test_images"], kwargs["test_labels"] = tensors_from_dataset(test)
        return cls(images, labels, **kwargs)

    def check_source(self, dataset: str, root: str | None) -> None:
        """Nothing to check: the data is in memory."""

    def describe(self) -> DatasetInfo:
        return self._own_info

    def setup(self, stage: str | None = None) -> None:
        """As :meth:`RealDataModule.setup`; without a test split only the train split is loaded (distillation needs
        no more; evaluation then says what is missing)."""
        if False in self._splits:
            super().setup(stage)
            return
        if stage in (None, "fit"):
            self.load_train()
        if self.space == "zca":
            self.fit_zca()

    def read_split(self, train: bool) -> LabeledImages:
        if train not in self._splits:
            raise ValueError(f"{self.dataset}: no test split was given; pass test_images and test_labels "
                             "(evaluation needs them)")
        return self._splits[train]


def tensors_from_dataset(dataset: Dataset[Any]) -> tuple[Tensor, Tensor]:
    """``(images, labels)`` of a map-style torch ``Dataset`` of ``(image, label)`` pairs, where an image is a PIL
    image (read as uint8) or a ``(C, H, W)`` tensor (uint8, or floats in [0, 1])."""
    images, labels = [], []
    for i in range(len(dataset)):  # type: ignore[arg-type]
        image, label = dataset[i]
        images.append(image if isinstance(image, Tensor) else pil_to_tensor(image))
        labels.append(int(label))
    if not images:
        raise ValueError("the dataset is empty")
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)
