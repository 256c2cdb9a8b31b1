"""ClassIndexedImages and ClassBalancedBatchSampler."""

from __future__ import annotations

import pytest
import torch

from lightning_dd.data import ClassBalancedBatchSampler, ClassIndexedImages
from lightning_dd.seeding import derive_seed


def _store(sizes: list[int], seed: int = 0) -> ClassIndexedImages:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(sizes)])
    labels = labels[torch.randperm(labels.numel(), generator=gen)]
    images = torch.arange(labels.numel(), dtype=torch.int64).remainder(256).to(torch.uint8)
    return ClassIndexedImages(images.view(-1, 1, 1, 1).expand(-1, 1, 2, 2).contiguous(), labels, len(sizes))


def test_store_indices_and_sample() -> None:
    store = _store([5, 3, 7])
    assert store.class_sizes() == [5, 3, 7] and len(store) == 15
    for c, idx in enumerate(store.indices_by_class):
        assert idx.dtype == torch.int64 and bool((store.labels[idx] == c).all())
        assert torch.equal(idx, idx.sort().values)
    gen = torch.Generator().manual_seed(3)
    picked = store.sample(2, 7, gen)
    assert picked.dtype == torch.uint8 and picked.shape == (7, 1, 2, 2)
    assert set(picked[:, 0, 0, 0].tolist()) == set(store.images[store.indices_by_class[2], 0, 0, 0].tolist())
    a = store.sample(0, 3, torch.Generator().manual_seed(1))
    assert torch.equal(a, store.sample(0, 3, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match=r"4 distinct images from class 1: it has 3"):
        store.sample(1, 4, gen)
    with pytest.raises(ValueError, match="labels must lie"):
        ClassIndexedImages(store.images, store.labels, 2)


def _sampler(**kwargs: object) -> ClassBalancedBatchSampler:
    store = _store([6, 4, 9, 5])
    args: dict = {"per_class": 3, "num_batches": 5, "seed": 7, "rank": 0, "world_size": 1, **kwargs}
    return ClassBalancedBatchSampler(store.indices_by_class, **args)


def test_batches_class_balanced_sorted_distinct() -> None:
    store = _store([6, 4, 9, 5])
    sampler = ClassBalancedBatchSampler(store.indices_by_class, per_class=3, num_batches=5, seed=7)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5 and sampler.batch_size == 12
    for batch in batches:
        labels = store.labels[torch.tensor(batch)]
        assert labels.tolist() == [c for c in range(4) for _ in range(3)]  # class-sorted, per_class each
        for c in range(4):
            chunk = batch[3 * c : 3 * c + 3]
            assert len(set(chunk)) == 3  # distinct within the class
    assert len({tuple(b) for b in batches}) == 5


def test_deterministic_and_random_access() -> None:
    a, b = _sampler(), _sampler()
    assert list(a) == list(b)
    a.set_epoch(3)
    epoch3 = list(a)
    assert epoch3 == [b.batch(i, epoch=3) for i in range(5)]
    assert epoch3[4] == _sampler().batch(4, epoch=3, rank=0)  # reproducible without replaying batches 0..3
    assert epoch3 != list(_sampler())  # epochs differ
    assert list(_sampler(seed=8)) != list(_sampler())  # seeds differ


def test_ranks_draw_different_batches() -> None:
    r0, r1 = _sampler(rank=0, world_size=2), _sampler(rank=1, world_size=2)
    assert list(r0) != list(r1)
    assert list(r1) == [r0.batch(i, rank=1) for i in range(5)]
    with pytest.raises(ValueError, match="rank 2 is not below world_size 2"):
        _sampler(rank=2, world_size=2)
    # default rank without torch.distributed: 0
    assert list(_sampler(rank=None, world_size=None)) == list(r0)


def test_skip_resumes_mid_epoch() -> None:
    full = _sampler()
    full.set_epoch(2)
    expected = list(full)
    resumed = _sampler()
    resumed.set_epoch(2)
    resumed.skip(3)
    assert len(resumed) == 2
    assert list(resumed) == expected[3:]
    resumed.set_epoch(2)  # set_epoch resets the skip
    assert len(resumed) == 5 and list(resumed) == expected
    with pytest.raises(ValueError, match="skip"):
        resumed.skip(6)


def test_validation_errors() -> None:
    store = _store([6, 2, 9])
    with pytest.raises(ValueError, match=r"per_class=3 exceeds the size of class 1 \(2 samples\)"):
        ClassBalancedBatchSampler(store.indices_by_class, per_class=3, num_batches=1)
    with pytest.raises(ValueError, match="num_batches"):
        ClassBalancedBatchSampler(store.indices_by_class, per_class=1, num_batches=0)


def test_mix_seed_spreads() -> None:
    seeds = {derive_seed(0, e, r, b) for e in range(4) for r in range(4) for b in range(50)}
    assert len(seeds) == 800 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(1, 2) != derive_seed(2, 1)


def test_sampler_is_its_own_sampler_for_lightning() -> None:
    # Lightning's _set_sampler_epoch calls set_epoch on dataloader.batch_sampler.sampler
    from lightning.fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    sampler = _sampler()
    loader = DataLoader(list(range(24)), batch_sampler=sampler)
    _set_sampler_epoch(loader, 4)
    assert sampler.epoch == 4
