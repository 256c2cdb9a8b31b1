"""The DataLoader pieces of :class:`~lightning_dd.data.real.RealDataModule`: batch-gathering dataset, resumable loader.

Exact resume needs three things from the loader side: the batch sampler continues the stream of batches at the
position the data module restored (:class:`StreamBatchSampler`), the loader reports the full epoch length whatever
was consumed (:class:`TrainDataLoader`), and the DataLoader iterator is created lazily so that the position is read
(and with workers, sampler indices drawn) only when the epoch's first batch is wanted (:class:`LazyIterator`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lightning_dd.data.protocol import RealDemand
from lightning_dd.data.samplers import ClassBalancedBatchSampler
from lightning_dd.seeding import STREAM_SAMPLER_EXTRA, derive_seed

__all__ = [
    "Batch",
    "LazyIterator",
    "StreamBatchSampler",
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

    Lightning creates the train iterator before the previous epoch's last batch is counted and before it calls
    ``set_epoch``; with ``num_workers > 0`` PyTorch draws sampler indices as soon as the iterator exists, so creation
    is delayed to the first batch.
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


class StreamBatchSampler(ClassBalancedBatchSampler):
    """A :class:`ClassBalancedBatchSampler` read as one endless stream of batches, from the data module's position.

    Stream batch ``g`` is batch ``g % num_batches`` of sampler epoch ``g // num_batches`` (so an uninterrupted run sees
    exactly the batches of epochs 0, 1, ... in order). Each iteration yields ``num_batches`` batches starting at
    ``position()``, read when the iteration starts: the number of batches the training loop has consumed so far.
    Lightning's own epoch counter is ignored (its ``set_epoch`` call changes nothing): a run resumed from a checkpoint
    written at the end of ``fit`` -- where Lightning starts a new epoch -- continues with the next batch of the
    stream, as an uninterrupted run would (Lightning stops the epoch itself after ``len(dataloader)`` batches).
    """

    def __init__(self, *args: Any, position: Callable[[], int], demand: RealDemand | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._position = position
        self.demand = demand = demand or RealDemand()
        self._all_indices = torch.cat(self.indices_by_class)  # the extra images are drawn from these
        if demand.extra_images > self._all_indices.numel():
            raise ValueError(f"RealDemand.extra_images={demand.extra_images} exceeds the {self._all_indices.numel()} "
                             "train images")

    def stream_batch(self, g: int, rank: int) -> list[int]:
        """Indices of stream batch ``g``: the demand's class-balanced parts, then its uniformly random extra images
        (distinct, from ``derive_seed(seed, STREAM_SAMPLER_EXTRA, epoch, rank, b)``)."""
        b, epoch = g % self.num_batches, g // self.num_batches
        indices = [i for part in range(self.demand.class_batches) for i in self.batch(b, epoch, rank, part)]
        if self.demand.extra_images:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, STREAM_SAMPLER_EXTRA, epoch, rank, b))
            order = torch.randperm(self._all_indices.numel(), generator=gen)[: self.demand.extra_images]
            indices += self._all_indices[order].tolist()
        return indices

    def set_epoch(self, epoch: int) -> None:
        """Recorded, not used: the stream position decides the batches."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        start, rank = self._position(), self.rank
        for g in range(start, start + self.num_batches):
            yield self.stream_batch(g, rank)

    def __len__(self) -> int:
        return self.num_batches
