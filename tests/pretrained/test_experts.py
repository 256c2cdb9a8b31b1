"""MTT expert buffers: one shard file per expert, a function of (seed, k), resumable and shardable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from lightning_dd.losses import flat_parameters
from lightning_dd.networks import create_network
from lightning_dd.pretrained import EXPERT_RECIPE, ExpertBuffer, expert_path, load_expert_buffer, train_experts
from lightning_dd.seeding import STREAM_EXPERT, make_generator
from lightning_dd.training import fit_classifier

RECIPE = dataclasses.replace(EXPERT_RECIPE, epochs=2, batch_size=16, dsa_strategy="color_crop")
META = {"dataset": "toy", "num_classes": 4, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(40, 3, 8, 8, generator=g), torch.arange(40) % 4


def train(data: tuple[torch.Tensor, torch.Tensor], out: Path, **kwargs: object) -> list[Path]:
    options = {"num_experts": 3, "recipe": RECIPE, "seed": 5, "log": lambda _: None, **META, **kwargs}
    return train_experts(*data, out, **options)  # type: ignore[arg-type]


def content(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_one_shard_per_expert_with_init_and_every_epoch(data: tuple, tmp_path: Path) -> None:
    paths = train(data, tmp_path)
    assert paths == [expert_path(tmp_path, k) for k in range(3)] and all(p.is_file() for p in paths)
    for k, path in enumerate(paths):
        shard = ExpertBuffer.load(path)
        (trajectory,) = shard.entries
        assert trajectory.shape == (RECIPE.epochs + 1, shard.num_parameters) and shard.epochs == RECIPE.epochs
        assert shard.info["expert_ids"] == [k] and shard.info["seed"] == 5 and shard.info["lr"] == RECIPE.lr
        # expert k: a function of (seed, k) -- its init and training replayed by hand
        generator = make_generator(5, STREAM_EXPERT, k)
        net = create_network("convnet", 3, 4, (8, 8), generator=generator)
        assert torch.equal(trajectory[0], flat_parameters(net))
        fit_classifier(net, *data, RECIPE, generator)
        assert torch.equal(trajectory[-1], flat_parameters(net))
        assert not torch.equal(trajectory[1], trajectory[0])  # it trained


def test_shards_partition_the_experts_and_equal_a_single_process(data: tuple, tmp_path: Path) -> None:
    train(data, tmp_path / "all")
    first = train(data, tmp_path / "split", shard_index=0, num_shards=2)
    second = train(data, tmp_path / "split", shard_index=1, num_shards=2)
    assert [p.name for p in first] == ["expert_00000.pt", "expert_00002.pt"]
    assert [p.name for p in second] == ["expert_00001.pt"]
    for k in range(3):
        a, b = content(expert_path(tmp_path / "all", k)), content(expert_path(tmp_path / "split", k))
        assert torch.equal(a["trajectories"][0], b["trajectories"][0])
    with pytest.raises(ValueError, match=r"shard_index must be in \[0, num_shards=2\), got 2"):
        train(data, tmp_path / "bad", shard_index=2, num_shards=2)


def test_resume_retrains_only_missing_experts(data: tuple, tmp_path: Path) -> None:
    train(data, tmp_path)
    original = content(expert_path(tmp_path, 1))["trajectories"][0]
    kept = expert_path(tmp_path, 0).stat().st_mtime_ns
    expert_path(tmp_path, 1).unlink()
    lines: list[str] = []
    train(data, tmp_path, log=lines.append)
    assert torch.equal(content(expert_path(tmp_path, 1))["trajectories"][0], original)
    assert expert_path(tmp_path, 0).stat().st_mtime_ns == kept
    assert any("expert 0: found" in line for line in lines) and any("expert 1 (2/3): epoch 2/2" in ln for ln in lines)
    with pytest.raises(ValueError, match=r"trained with other settings \(lr: file 0.01, run 0.05\)"):
        train(data, tmp_path, recipe=dataclasses.replace(RECIPE, lr=0.05))


def test_load_merges_in_id_order_and_refuses_disagreeing_shards(data: tuple, tmp_path: Path) -> None:
    train(data, tmp_path)
    buffer = load_expert_buffer(tmp_path)
    assert len(buffer) == 3 and buffer.info["expert_ids"] == [0, 1, 2] and buffer.epochs == 2
    for k in range(3):
        assert torch.equal(buffer.snapshot(k, 2), content(expert_path(tmp_path, k))["trajectories"][0][2])
    assert len(load_expert_buffer(tmp_path, max_experts=2)) == 2
    with pytest.raises(IndexError, match=r"epochs 0..2, got 3"):
        buffer.snapshot(0, 3)
    other = tmp_path / "other"
    train(data, other, num_experts=1, recipe=dataclasses.replace(RECIPE, epochs=1))
    expert_path(other, 0).rename(expert_path(tmp_path, 7))
    with pytest.raises(ValueError, match="disagree"):
        load_expert_buffer(tmp_path)
    with pytest.raises(FileNotFoundError, match="lightning-dd experts --output"):
        load_expert_buffer(tmp_path / "empty")


def test_round_trip_and_compatibility_checks(tmp_path: Path) -> None:
    trajectories = [torch.randn(4, 10), torch.randn(4, 10)]
    buffer = ExpertBuffer(trajectories, "convnet", "toy", (3, 8, 8), 4, META["mean"], META["std"], "zca",
                          {"zca": "abc", "expert_ids": [3, 4]})
    path = buffer.save(tmp_path / "b.pt")
    loaded = ExpertBuffer.load(path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.entries, trajectories, strict=True))
    assert loaded.header() == buffer.header()
    loaded.check_run("convnet", 10, "abc", 3)
    for args, message in [
        (("convnet_d4", 10, "abc", 3), "network 'convnet' \\(run: 'convnet_d4'\\)"),
        (("convnet", 11, "abc", 3), "10 parameters per expert \\(run's student: 11\\)"),
        (("convnet", 10, None, 3), "ZCA 'abc' \\(run: None\\)"),
        (("convnet", 10, "abc", 4), "3 epochs per expert \\(run needs max_start_epoch \\+ expert_epochs = 4\\)"),
    ]:
        with pytest.raises(ValueError, match=message):
            loaded.check_run(*args)
    with pytest.raises(ValueError, match=r"dataset 'toy' \(run: 'cifar10'\).*lightning-dd experts"):
        loaded.check_compatible("cifar10", (3, 8, 8), META["mean"], META["std"], "zca")
    with pytest.raises(ValueError, match=r"image space 'zca' \(run: 'normalized'\)"):
        loaded.check_compatible("toy", (3, 8, 8), META["mean"], META["std"], "normalized")
    bad = buffer.to_dict()
    bad["trajectories"] = [torch.randn(10)]
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"damaged .*trajectories\[0\] must be a float"):
        ExpertBuffer.load(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="share one"):
        ExpertBuffer([torch.randn(4, 10), torch.randn(3, 10)], "convnet", "toy", (3, 8, 8), 4, META["mean"],
                     META["std"])
