"""ClassIndexedImages, ClassBalancedBatchSampler, and the RealDemand batches of StreamBatchSampler / RealDataModule."""

from __future__ import annotations

import pytest
import torch

from lightning_dd.data import ClassBalancedBatchSampler, ClassIndexedImages, RealDataModule
from lightning_dd.data.loaders import StreamBatchSampler
from lightning_dd.data.protocol import NO_REAL_IMAGES, RealDemand
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


# ------------------------------------------------------------------------------------------------ RealDemand


def _stream(demand: RealDemand | None = None, position: int = 0, **kwargs: object) -> StreamBatchSampler:
    store = _store([6, 4, 9, 5])
    args: dict = {"per_class": 3, "num_batches": 5, "seed": 7, "rank": 0, "world_size": 2, **kwargs}
    return StreamBatchSampler(store.indices_by_class, position=lambda: position, demand=demand, **args)


def test_demanded_batch_is_parts_then_distinct_extras() -> None:
    store = _store([6, 4, 9, 5])
    plain = _sampler(world_size=2)
    sampler = _stream(RealDemand(class_batches=3, extra_images=5))
    for g in (0, 4, 5, 13):
        batch = sampler.stream_batch(g, 0)
        assert len(batch) == 3 * 12 + 5
        parts = [batch[12 * p : 12 * p + 12] for p in range(3)]
        for part in parts:
            assert store.labels[torch.tensor(part)].tolist() == [c for c in range(4) for _ in range(3)]
            assert all(len(set(part[3 * c : 3 * c + 3])) == 3 for c in range(4))  # per_class distinct per class
        assert parts[0] == plain.batch(g % 5, epoch=g // 5, rank=0)  # part 0: the plain batch at that position
        assert parts[0] != parts[1] and parts[1] != parts[2] and parts[0] != parts[2]  # independent draws
        extra = batch[36:]
        assert len(set(extra)) == 5 and all(0 <= i < 24 for i in extra)
    extras = {i for g in range(40) for i in sampler.stream_batch(g, 0)[36:]}
    assert extras == set(range(24))  # uniform over the whole train split, not class-balanced


def test_default_demand_leaves_batches_plain() -> None:
    plain = _sampler(world_size=2)
    for demand in (None, RealDemand(), RealDemand(1, 0)):
        sampler = _stream(demand, position=7)
        assert sampler.demand == RealDemand(class_batches=1, extra_images=0)
        assert list(sampler) == [plain.batch(g % 5, epoch=g // 5, rank=0) for g in range(7, 12)]


def test_demanded_batches_are_reproducible_and_rank_dependent() -> None:
    demand = RealDemand(class_batches=2, extra_images=4)
    a, b = _stream(demand, position=3), _stream(demand, position=3)
    assert list(a) == list(b) == [a.stream_batch(g, 0) for g in range(3, 8)]
    assert a.stream_batch(6, 0) == _stream(demand).stream_batch(6, 0)  # random access: no replay needed
    r1 = _stream(demand, rank=1)
    for g in range(5):
        mine, other = a.stream_batch(g, 0), r1.stream_batch(g, 1)
        assert mine[:12] != other[:12] and mine[12:24] != other[12:24] and mine[24:] != other[24:]
    assert a.stream_batch(1, 0)[24:] != a.stream_batch(2, 0)[24:]  # positions differ in their extras too
    assert _stream(demand, seed=8).stream_batch(0, 0) != a.stream_batch(0, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_batches": -1}, r"RealDemand.class_batches must be an integer >= 0, got -1"),
        ({"extra_images": -1}, r"RealDemand.extra_images must be an integer >= 0, got -1"),
        ({"class_batches": True}, r"RealDemand.class_batches must be an integer >= 0, got True"),
        ({"extra_images": False}, r"RealDemand.extra_images must be an integer >= 0, got False"),
        ({"class_batches": 2.0}, r"RealDemand.class_batches must be an integer >= 0, got 2.0"),
    ],
)
def test_demand_validation_names_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RealDemand(**kwargs)


def test_no_real_images_gives_empty_batches() -> None:
    """MTT's demand: the stream yields empty index lists (no real image is read per iteration)."""
    sampler = _stream(NO_REAL_IMAGES)
    assert sampler.stream_batch(0, 0) == [] and list(sampler)[:2] == [[], []]


def test_extra_images_beyond_the_dataset_are_refused() -> None:
    with pytest.raises(ValueError, match=r"RealDemand.extra_images=25 exceeds the 24 train images"):
        _stream(RealDemand(extra_images=25))
    everything = _stream(RealDemand(extra_images=24)).stream_batch(2, 0)[12:]
    assert sorted(everything) == list(range(24))  # exactly the dataset: a permutation of it


def test_data_module_batches_follow_its_demand() -> None:
    dm = RealDataModule("digits", batch_real=4, iterations_per_epoch=2)
    dm.set_real_demand(RealDemand(3, 5))
    loader = dm.train_dataloader()
    batches = list(loader)
    store = dm.store
    assert len(batches) == len(loader) == 2
    blocks = [c for c in range(10) for _ in range(4)]
    for g, (images, labels) in enumerate(batches):
        assert images.shape == (3 * 10 * 4 + 5, 1, 8, 8) and labels.shape == (125,)
        assert labels[:120].tolist() == blocks * 3
        indices = loader.batch_sampler.stream_batch(g, 0)
        assert len(set(indices[120:])) == 5
        assert torch.equal(images, store.images[torch.tensor(indices)])
        assert torch.equal(labels, store.labels[torch.tensor(indices)])
        plain = ClassBalancedBatchSampler(store.indices_by_class, 4, 2, seed=0, rank=0)
        assert indices[:40] == plain.batch(g, epoch=0)
    assert not torch.equal(batches[0][0][:40], batches[0][0][40:80])  # parts are independent draws

    state = dm.state_dict()
    assert state["config"]["demand"] == {"class_batches": 3, "extra_images": 5}
    same = RealDataModule("digits", batch_real=4, iterations_per_epoch=2)
    same.set_real_demand(RealDemand(3, 5))
    same.load_state_dict({**state, "position": 3})
    assert same.state_dict()["position"] == 3
    for demand in (RealDemand(), RealDemand(3, 4)):
        other = RealDataModule("digits", batch_real=4, iterations_per_epoch=2)
        other.set_real_demand(demand)
        with pytest.raises(ValueError, match=r"data\.demand: checkpoint RealDemand\(class_batches=3, extra_images=5\)"):
            other.load_state_dict(state)
    plain_state = RealDataModule("digits", batch_real=4, iterations_per_epoch=2).state_dict()
    assert plain_state["config"]["demand"] == {"class_batches": 1, "extra_images": 0}
    with pytest.raises(ValueError, match=r"data\.demand"):
        dm.load_state_dict(plain_state)
