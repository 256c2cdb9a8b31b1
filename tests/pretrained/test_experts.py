"""MTT expert buffers: one shard file per expert, a function of (seed, k), resumable and shardable."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

from lightning_dd.losses import flat_parameters
from lightning_dd.networks import create_network
from lightning_dd.pretrained import EXPERT_RECIPE, ExpertBuffer, expert_path, load_expert_buffer, train_experts
from lightning_dd.seeding import STREAM_EXPERT, make_generator
from lightning_dd.training import fit_classifier

RECIPE = dataclasses.replace(EXPERT_RECIPE, epochs=2, batch_size=16, dsa_strategy="color_crop")
META: dict[str, Any] = {"dataset": "toy", "num_classes": 4, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(40, 3, 8, 8, generator=g), torch.arange(40) % 4


def train(data: tuple[torch.Tensor, torch.Tensor], out: Path, **kwargs: Any) -> list[Path]:
    options = {"num_experts": 3, "recipe": RECIPE, "seed": 5, "log": lambda _: None, **META, **kwargs}
    return train_experts(*data, out, **options)


def content(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=True)


def same_content(a: Path, b: Path) -> bool:
    """Equal file contents: every header field and every trajectory bit for bit."""
    x, y = content(a), content(b)
    payload_x, payload_y = x.pop("trajectories"), y.pop("trajectories")
    return x == y and len(payload_x) == len(payload_y) and all(
        torch.equal(p, q) for p, q in zip(payload_x, payload_y, strict=True))


def test_one_shard_per_expert_with_init_and_every_epoch(data: tuple, tmp_path: Path) -> None:
    paths = train(data, tmp_path)
    assert paths == [expert_path(tmp_path, k) for k in range(3)] and all(p.is_file() for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expert_00000.pt", "expert_00001.pt", "expert_00002.pt"]
    trajectories = []
    for k, path in enumerate(paths):
        shard = ExpertBuffer.load(path)
        (trajectory,) = shard.entries
        trajectories.append(trajectory)
        assert trajectory.shape == (RECIPE.epochs + 1, shard.num_parameters) and shard.epochs == RECIPE.epochs
        assert trajectory.dtype == torch.float32
        assert (shard.network, shard.dataset, shard.image_shape, shard.num_classes) == ("convnet", "toy", (3, 8, 8), 4)
        assert shard.info["expert_ids"] == [k] and shard.info["seed"] == 5 and shard.info["lr"] == RECIPE.lr
        assert shard.info["dsa_strategy"] == "color_crop" and shard.info["zca"] is None
        # expert k: a function of (seed, k) -- its init and its training replayed by hand
        generator = make_generator(5, STREAM_EXPERT, k)
        net = create_network("convnet", 3, 4, (8, 8), generator=generator)
        assert torch.equal(trajectory[0], flat_parameters(net))
        epochs: list[torch.Tensor] = []

        def record(epoch: int, trained: torch.nn.Module, epochs: list[torch.Tensor] = epochs) -> None:
            epochs.append(flat_parameters(trained))

        fit_classifier(net, *data, RECIPE, generator, on_epoch_end=record)
        assert torch.equal(trajectory[1], epochs[0]) and torch.equal(trajectory[-1], flat_parameters(net))
        assert not torch.equal(trajectory[1], trajectory[0]) and not torch.equal(trajectory[2], trajectory[1])
    assert not torch.equal(trajectories[0][0], trajectories[1][0])  # experts differ from their init on


def test_the_test_split_accuracy_is_recorded(data: tuple, tmp_path: Path) -> None:
    (path,) = train(data, tmp_path, num_experts=1, recipe=dataclasses.replace(RECIPE, epochs=1),
                    test=(data[0][:12], data[1][:12]))
    info = ExpertBuffer.load(path).info
    (accuracy,) = info["test_accuracy"]
    assert 0.0 <= accuracy <= 1.0 and accuracy * 12 == round(accuracy * 12)  # a fraction of the 12 test images
    assert 0.0 <= info["train_accuracy"][0] <= 1.0


def test_shards_partition_the_experts_and_equal_a_single_process(data: tuple, tmp_path: Path) -> None:
    train(data, tmp_path / "all")
    first = train(data, tmp_path / "split", shard_index=0, num_shards=2)
    assert [p.name for p in first] == ["expert_00000.pt", "expert_00002.pt"]
    assert not expert_path(tmp_path / "split", 1).exists()  # the other process's expert is left alone
    second = train(data, tmp_path / "split", shard_index=1, num_shards=2)
    assert [p.name for p in second] == ["expert_00001.pt"]
    # expert 1 trained alone (one of three processes) is the same file as when all experts train in one process
    alone = train(data, tmp_path / "alone", shard_index=1, num_shards=3)
    assert [p.name for p in alone] == ["expert_00001.pt"] and len(list((tmp_path / "alone").iterdir())) == 1
    for k in range(3):
        assert same_content(expert_path(tmp_path / "all", k), expert_path(tmp_path / "split", k))
    assert same_content(expert_path(tmp_path / "all", 1), expert_path(tmp_path / "alone", 1))
    assert not same_content(expert_path(tmp_path / "all", 0), expert_path(tmp_path / "all", 1))
    with pytest.raises(ValueError, match=r"shard_index must be in \[0, num_shards=2\), got 2"):
        train(data, tmp_path / "bad", shard_index=2, num_shards=2)
    with pytest.raises(ValueError, match="num_experts must be an integer >= 1, got 0"):
        train(data, tmp_path / "bad", num_experts=0)
    with pytest.raises(ValueError, match="num_shards must be an integer >= 1, got 0"):
        train(data, tmp_path / "bad", num_shards=0)


def test_resume_retrains_only_missing_experts(data: tuple, tmp_path: Path) -> None:
    train(data, tmp_path)
    original = tmp_path / "original.bin"
    original.write_bytes(expert_path(tmp_path, 1).read_bytes())
    kept_bytes = expert_path(tmp_path, 0).read_bytes()
    kept = expert_path(tmp_path, 0).stat().st_mtime_ns
    expert_path(tmp_path, 1).unlink()
    lines: list[str] = []
    paths = train(data, tmp_path, log=lines.append)
    assert paths == [expert_path(tmp_path, k) for k in range(3)]
    assert same_content(expert_path(tmp_path, 1), original)  # retrained: the same expert
    assert expert_path(tmp_path, 0).stat().st_mtime_ns == kept
    assert expert_path(tmp_path, 0).read_bytes() == kept_bytes
    assert any("expert 0: found" in line for line in lines) and any("expert 2: found" in line for line in lines)
    assert [line for line in lines if ": epoch" in line] == ["[lightning_dd] expert 1 (2/3): epoch 1/2",
                                                             "[lightning_dd] expert 1 (2/3): epoch 2/2"]
    assert sum("wrote" in line for line in lines) == 1
    with pytest.raises(ValueError, match=r"expert_00000.pt was trained with other settings \(lr: file 0.01, run "
                                         r"0.05\); use another --output"):
        train(data, tmp_path, recipe=dataclasses.replace(RECIPE, lr=0.05))
    with pytest.raises(ValueError, match=r"other settings \(seed: file 5, run 6\)"):
        train(data, tmp_path, seed=6)
    with pytest.raises(ValueError, match=r"dataset 'toy' \(run: 'other'\)"):
        train(data, tmp_path, dataset="other")


def test_load_merges_in_id_order_and_refuses_disagreeing_shards(data: tuple, tmp_path: Path) -> None:
    train(data, tmp_path, shard_index=1, num_shards=2)  # expert 1 is written first
    train(data, tmp_path, shard_index=0, num_shards=2)
    buffer = load_expert_buffer(tmp_path)
    assert len(buffer) == 3 and buffer.info["expert_ids"] == [0, 1, 2] and buffer.epochs == 2
    assert buffer.num_parameters == content(expert_path(tmp_path, 0))["trajectories"][0].shape[1]
    assert len(buffer.info["train_accuracy"]) == 3
    for k in range(3):
        trajectory = content(expert_path(tmp_path, k))["trajectories"][0]
        assert all(torch.equal(buffer.snapshot(k, e), trajectory[e]) for e in range(3))
    first_two = load_expert_buffer(tmp_path, max_experts=2)
    assert len(first_two) == 2 and first_two.info["expert_ids"] == [0, 1]
    with pytest.raises(IndexError, match=r"epochs 0..2, got 3"):
        buffer.snapshot(0, 3)
    with pytest.raises(ValueError, match="max_experts must be >= 1, got 0"):
        load_expert_buffer(tmp_path, max_experts=0)
    for name, kwargs in (("epochs", {"recipe": dataclasses.replace(RECIPE, epochs=1)}),
                         ("lr", {"recipe": dataclasses.replace(RECIPE, lr=0.02)})):
        other = tmp_path.parent / f"other_{name}"
        train(data, other, num_experts=1, **kwargs)
        mixed = tmp_path.parent / f"mixed_{name}"
        mixed.mkdir()
        for k in range(3):
            expert_path(mixed, k).write_bytes(expert_path(tmp_path, k).read_bytes())
        expert_path(mixed, 7).write_bytes(expert_path(other, 0).read_bytes())
        with pytest.raises(ValueError, match=r"shards of expert buffer .* disagree \(.*expert_00000.pt vs "
                                             r".*expert_00007.pt.*one buffer holds experts of one recipe"):
            load_expert_buffer(mixed)
    with pytest.raises(FileNotFoundError, match=r"no expert buffer at .*empty.*lightning-dd experts --output"):
        load_expert_buffer(tmp_path / "empty")
    (tmp_path / "no_shards").mkdir()
    (tmp_path / "no_shards" / "notes.txt").write_text("not a shard")
    with pytest.raises(FileNotFoundError, match=r"no expert_\*\.pt files"):
        load_expert_buffer(tmp_path / "no_shards")


def test_round_trip_and_compatibility_checks(tmp_path: Path) -> None:
    trajectories = [torch.randn(4, 10), torch.randn(4, 10)]
    buffer = ExpertBuffer(trajectories, "convnet", "toy", (3, 8, 8), 4, META["mean"], META["std"], "zca",
                          {"zca": "abc", "expert_ids": [3, 4]})
    path = buffer.save(tmp_path / "b.pt")
    loaded = ExpertBuffer.load(path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.entries, trajectories, strict=True))
    assert loaded.header() == buffer.header() and loaded.path == path
    assert (loaded.epochs, loaded.num_parameters, len(loaded)) == (3, 10, 2)
    loaded.check_run("convnet", 10, "abc", 3)  # fits: no error
    loaded.check_compatible("toy", (3, 8, 8), META["mean"], META["std"], "zca", num_classes=4)
    for args, message in [
        (("convnet_d4", 10, "abc", 3), r"network 'convnet' \(run: 'convnet_d4'\)"),
        (("convnet", 11, "abc", 3), r"10 parameters per expert \(run's student: 11\)"),
        (("convnet", 10, None, 3), r"ZCA 'abc' \(run: None\)"),
        (("convnet", 10, "xyz", 3), r"ZCA 'abc' \(run: 'xyz'\)"),
        (("convnet", 10, "abc", 4), r"3 epochs per expert \(run needs .*= 4\)"),
    ]:
        with pytest.raises(ValueError, match=rf"expert buffer .* was made for {message}.*lightning-dd experts"):
            loaded.check_run(*args)
    with pytest.raises(ValueError, match=r"dataset 'toy' \(run: 'cifar10'\).*lightning-dd experts"):
        loaded.check_compatible("cifar10", (3, 8, 8), META["mean"], META["std"], "zca")
    with pytest.raises(ValueError, match=r"image space 'zca' \(run: 'normalized'\)"):
        loaded.check_compatible("toy", (3, 8, 8), META["mean"], META["std"], "normalized")
    with pytest.raises(ValueError, match=r"image shape \(3, 8, 8\) \(run: \(3, 16, 16\)\)"):
        loaded.check_compatible("toy", (3, 16, 16), META["mean"], META["std"], "zca")
    with pytest.raises(ValueError, match=r"4 classes \(run: 10\)"):
        loaded.check_compatible("toy", (3, 8, 8), META["mean"], META["std"], "zca", num_classes=10)
    with pytest.raises(ValueError, match="normalisation"):
        loaded.check_compatible("toy", (3, 8, 8), (0.0, 0.0, 0.0), META["std"], "zca")


def test_damaged_files_are_refused(tmp_path: Path) -> None:
    buffer = ExpertBuffer([torch.randn(4, 10)], "convnet", "toy", (3, 8, 8), 4, META["mean"], META["std"])
    for name, entry in (("flat", torch.randn(10)), ("one_row", torch.randn(1, 10)),
                        ("ints", torch.zeros(4, 10, dtype=torch.int64))):
        bad = buffer.to_dict()
        bad["trajectories"] = [entry]
        torch.save(bad, tmp_path / f"{name}.pt")
        with pytest.raises(ValueError, match=r"damaged .*trajectories\[0\] must be a float \(epochs \+ 1 >= 2"):
            ExpertBuffer.load(tmp_path / f"{name}.pt")
    bad = buffer.to_dict()
    bad["trajectories"] = [torch.randn(4, 10), torch.randn(3, 10)]
    torch.save(bad, tmp_path / "ragged.pt")
    with pytest.raises(ValueError, match=r"damaged .*share one"):
        ExpertBuffer.load(tmp_path / "ragged.pt")
    good = buffer.save(tmp_path / "good.pt")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable"):
        ExpertBuffer.load(tmp_path / "cut.pt")
    with pytest.raises(FileNotFoundError, match="lightning-dd experts --output"):
        ExpertBuffer.load(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="share one"):
        ExpertBuffer([torch.randn(4, 10), torch.randn(3, 10)], "convnet", "toy", (3, 8, 8), 4, META["mean"],
                     META["std"])
    with pytest.raises(ValueError, match=r"info\.expert_ids lists 1 experts for 2 trajectories"):
        ExpertBuffer([torch.randn(4, 10)] * 2, "convnet", "toy", (3, 8, 8), 4, META["mean"], META["std"],
                     info={"expert_ids": [0]})
