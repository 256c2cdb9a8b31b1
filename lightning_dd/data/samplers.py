"""Class-balanced batch sampling that is reproducible per (seed, epoch, rank, batch)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Sampler

from lightning_dd.seeding import STREAM_SAMPLER, derive_seed

__all__ = ["ClassBalancedBatchSampler"]


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Yields ``num_batches`` index lists per epoch, each with ``per_class`` distinct random indices of every class.

    A batch is class-sorted: the ``per_class`` indices of class 0 first, then class 1, and so on, so its length is
    ``num_classes * per_class``. Batch ``b`` of epoch ``e`` on rank ``r`` is drawn from its own ``torch.Generator``
    seeded with ``derive_seed(seed, STREAM_SAMPLER, e, r, b)``: any batch can be reproduced without replaying
    earlier ones (:meth:`batch`), ranks draw different batches, and epochs differ.

    Under Lightning, build the Trainer with ``use_distributed_sampler=False`` (Lightning cannot inject a
    ``DistributedSampler`` into a custom batch sampler). Lightning calls ``set_epoch`` on
    ``dataloader.batch_sampler.sampler``, which is this object (see :attr:`sampler`).

    Args:
        indices_by_class: one ``int64`` index tensor per class (e.g. ``ClassIndexedImages.indices_by_class``).
        per_class: indices per class per batch (at most the smallest class size).
        num_batches: batches per epoch.
        seed: base seed.
        rank: this process's rank; ``None``: ``torch.distributed``'s rank if initialized, else 0 (looked up when
            iterating, so a sampler built before the process group exists still gets the right rank).
        world_size: number of ranks; ``None``: ``torch.distributed``'s world size if initialized, else 1. Only used to
            validate ``rank``.
    """

    def __init__(
        self,
        indices_by_class: Sequence[Tensor],
        per_class: int,
        num_batches: int,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if len(indices_by_class) == 0:
            raise ValueError("indices_by_class is empty: at least one class is needed")
        if per_class < 1:
            raise ValueError(f"per_class must be >= 1, got {per_class}")
        if num_batches < 1:
            raise ValueError(f"num_batches must be >= 1, got {num_batches}")
        self.indices_by_class = [torch.as_tensor(idx, dtype=torch.int64).reshape(-1) for idx in indices_by_class]
        sizes = [int(idx.numel()) for idx in self.indices_by_class]
        smallest = min(range(len(sizes)), key=sizes.__getitem__)
        if per_class > sizes[smallest]:
            raise ValueError(
                f"per_class={per_class} exceeds the size of class {smallest} ({sizes[smallest]} samples); "
                f"use per_class <= {sizes[smallest]}"
            )
        if rank is not None and rank < 0:
            raise ValueError(f"rank must be >= 0, got {rank}")
        if rank is not None and world_size is not None and rank >= world_size:
            raise ValueError(f"rank {rank} is not below world_size {world_size}")
        self.per_class = int(per_class)
        self.num_batches = int(num_batches)
        self.seed = int(seed)
        self._rank = rank
        self._world_size = world_size
        self.epoch = 0
        self.skipped = 0

    @property
    def sampler(self) -> ClassBalancedBatchSampler:
        """This object, so that Lightning's ``_set_sampler_epoch`` (which looks at ``batch_sampler.sampler``) finds
        :meth:`set_epoch`."""
        return self

    @property
    def rank(self) -> int:
        """The rank given at construction, else ``torch.distributed``'s rank if initialized, else 0."""
        if self._rank is not None:
            return self._rank
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
        return 0

    @property
    def world_size(self) -> int:
        """The world size given at construction, else ``torch.distributed``'s if initialized, else 1."""
        if self._world_size is not None:
            return self._world_size
        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size()
        return 1

    @property
    def num_classes(self) -> int:
        return len(self.indices_by_class)

    @property
    def batch_size(self) -> int:
        """Indices per batch: ``num_classes * per_class``."""
        return self.num_classes * self.per_class

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields; resets :meth:`skip` to 0."""
        self.epoch = int(epoch)
        self.skipped = 0

    def skip(self, n: int) -> None:
        """Make iterations of the current epoch start at batch ``n`` (to resume); undone by :meth:`set_epoch`."""
        if not 0 <= n <= self.num_batches:
            raise ValueError(f"skip count must lie in [0, {self.num_batches}], got {n}")
        self.skipped = int(n)

    def batch(self, b: int, epoch: int | None = None, rank: int | None = None, part: int = 0) -> list[int]:
        """Indices of batch ``b`` of ``epoch`` (default: the current one) on ``rank`` (default: :attr:`rank`).

        ``part`` > 0 draws an independent class-balanced batch for the same position (key
        ``(seed, STREAM_SAMPLER, epoch, rank, b, part)``; part 0 is the plain batch), for batches made of several
        class-balanced parts (:class:`~lightning_dd.data.protocol.RealDemand`).
        """
        epoch = self.epoch if epoch is None else epoch
        rank = self.rank if rank is None else rank
        keys = (self.seed, STREAM_SAMPLER, epoch, rank, b) + ((part,) if part else ())
        gen = torch.Generator().manual_seed(derive_seed(*keys))
        parts = [idx[torch.randperm(idx.numel(), generator=gen)[: self.per_class]] for idx in self.indices_by_class]
        return torch.cat(parts).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        # A generator: epoch, skip and rank are read when iteration actually starts (DataLoader creates the iterator
        # before Lightning calls set_epoch at the start of a resumed epoch).
        epoch, start, rank = self.epoch, self.skipped, self.rank
        for b in range(start, self.num_batches):
            yield self.batch(b, epoch, rank)

    def __len__(self) -> int:
        """Batches one iteration yields: ``num_batches - skipped``."""
        return self.num_batches - self.skipped
