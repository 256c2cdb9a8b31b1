"""The DataLoader pieces of :class:`~lightning_dd.data.real.RealDataModule`: batch-gathering dataset, resumable loader.

Exact mid-epoch resume needs three things from the loader side: the batch sampler skips the batches of the restored
epoch that were already consumed (:class:`ResumingBatchSampler`), the loader still reports the full epoch length
(:class:`TrainDataLoader`), and the DataLoader iterator is created lazily so that no sampler index is drawn before
Lightning's ``set_epoch`` (:class:`LazyIterator`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lightning_dd.data.samplers import ClassBalancedBatchSampler

__all__ = [
    "Batch",
    "LazyIterator",
    "ResumingBatchSampler",
    "TensorPairDataset",
    "TrainDataLoader",
    "passthrough_collate",
]

Batch = tuple[Tensor, Tensor]


class TensorPairDataset(Dataset[Batch]):
    """``(images[i], labels[i])``; ``__getitems__`` gathers a whole batch with one tensor index."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> Batch:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: list[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return self.images[idx], self.labels[idx]


def passthrough_collate(batch: Any) -> Any:
    """Collate function for datasets whose ``__getitems__`` already returns the batch ``(images, labels)``.

    Typed ``Any``: DataLoader's annotation expects a list of samples, but with ``__getitems__`` it passes the batch.
    """
    return batch


class LazyIterator(Iterator[Batch]):
    """Creates the DataLoader iterator on the first ``next``.

    Lightning creates the train iterator before it calls ``set_epoch`` for a resumed epoch; with ``num_workers > 0``
    PyTorch draws sampler indices as soon as the iterator exists, so creation is delayed to the first batch.
    """

    def __init__(self, loader: DataLoader) -> None:
        self._loader = loader
        self._it: Iterator[Batch] | None = None

    def __next__(self) -> Batch:
        if self._it is None:
            self._it = DataLoader.__iter__(self._loader)
        return next(self._it)


class TrainDataLoader(DataLoader):
    """Reports the full epoch length whatever the sampler skips, as Lightning expects of a resumed loader.

    On a mid-epoch resume Lightning restores its batch counter to the consumed count ``n`` and stops the epoch when
    the counter reaches ``len(dataloader)``; the sampler then yields the remaining ``num_batches - n`` batches.
    """

    def __len__(self) -> int:
        sampler = self.batch_sampler
        assert isinstance(sampler, ClassBalancedBatchSampler)
        return sampler.num_batches

    # DataLoader.__iter__ is typed to return its _BaseDataLoaderIter; this one returns the lazy wrapper
    def __iter__(self) -> Iterator[Batch]:  # type: ignore[override]
        return LazyIterator(self)

    def state_dict(self) -> dict[str, Any]:
        """Empty: the position is saved by :meth:`RealDataModule.state_dict`.

        Defining ``state_dict``/``load_state_dict`` tells Lightning the loader is resumable (it is, through the
        DataModule), which avoids its "dataloader is not resumable" warning on mid-epoch resumes.
        """
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to do: :meth:`RealDataModule.load_state_dict` restored the position already."""


class ResumingBatchSampler(ClassBalancedBatchSampler):
    """A :class:`ClassBalancedBatchSampler` that skips ``n`` batches when (re)set to the epoch of a restored state."""

    def __init__(self, *args: Any, resume: tuple[int, int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resume = resume
        if resume is not None:
            self.set_epoch(resume[0])

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self._resume is not None:
            resume_epoch, consumed = self._resume
            if epoch == resume_epoch:
                self.skip(min(consumed, self.num_batches))
            else:
                self._resume = None
