"""The pool-file base and ProxyPool on it: round trip, refusals (missing / corrupt / foreign / newer / damaged files,
incompatible data named on both sides), lazy per-device materialisation, no submodule registration, files written
before the image space was recorded, and a second (trajectory-like) subclass to keep the base generic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from lightning_dd.networks import create_network
from lightning_dd.pretrained import PoolFile, ProxyPool, device_key, freeze
from lightning_dd.regularizers import CMIRegularizer

SHAPE, K, MEAN, STD = (1, 8, 8), 10, (0.3,), (0.4,)


def nets(k: int = 3) -> list[nn.Module]:
    return [create_network("convnet", 1, K, (8, 8), generator=torch.Generator().manual_seed(i)) for i in range(k)]


def make_pool(k: int = 3, **header: Any) -> ProxyPool:
    fields: dict[str, Any] = {"network": "convnet", "dataset": "digits", "image_shape": SHAPE, "num_classes": K,
                              "mean": MEAN, "std": STD, "info": {"seed": 0, "train_accuracy": [0.5] * k}, **header}
    return ProxyPool(nets(k), **fields)


@pytest.fixture()
def path(tmp_path: Path) -> Path:
    return make_pool().save(tmp_path / "pool.pt")


# ------------------------------------------------------------------------------------------------ round trip


def test_round_trip_keeps_header_and_weights(path: Path) -> None:
    original = make_pool()
    loaded = ProxyPool.load(path)
    assert len(loaded) == 3 and loaded.path == path
    for name in ("network", "dataset", "image_shape", "num_classes", "mean", "std", "space", "info"):
        assert getattr(loaded, name) == getattr(original, name), name
    assert (loaded.space, loaded.image_shape, loaded.mean) == ("normalized", (1, 8, 8), (0.3,))
    x = torch.randn(4, *SHAPE)
    for a, b in zip(loaded.networks, original.networks, strict=True):
        assert torch.equal(a(x), b(x)) and torch.equal(a.embed(x), b.embed(x))
        assert not a.training and not any(p.requires_grad for p in a.parameters())
    raw = torch.load(path, weights_only=True)
    assert (raw["format"], raw["format_version"], raw["space"]) == ("lightning_dd.proxy_pool", 1, "normalized")
    assert isinstance(raw["state_dicts"], list) and len(raw["state_dicts"]) == 3


def test_a_pool_records_its_space_and_a_zca_pool_takes_only_zca_images(tmp_path: Path) -> None:
    zca = ProxyPool.load(make_pool(space="zca").save(tmp_path / "zca.pt"))
    assert zca.space == "zca"
    zca.check_compatible("digits", SHAPE, MEAN, STD, "zca")
    with pytest.raises(ValueError, match=r"image space 'zca' \(run: 'normalized'\)"):
        zca.check_compatible("digits", SHAPE, MEAN, STD, "normalized")
    x = torch.randn(2, *SHAPE)
    assert zca.prepare_input(x, "zca") is x
    with pytest.raises(ValueError, match="pool's space 'zca'"):
        zca.prepare_input(x, "pixels")


def test_files_written_before_the_space_was_recorded_load_as_normalized(tmp_path: Path) -> None:
    old = {  # exactly the fields of the files written by lightning_dd/proxies.py (format_version 1)
        "format": "lightning_dd.proxy_pool", "format_version": 1, "network": "convnet", "dataset": "digits",
        "image_shape": [1, 8, 8], "num_classes": K, "mean": [0.3], "std": [0.4],
        "info": {"epochs": 2, "augmentation": "none"},
        "state_dicts": [{k: v.detach().cpu() for k, v in net.state_dict().items()} for net in nets(2)],
    }  # fmt: skip
    torch.save(old, tmp_path / "old.pt")
    pool = ProxyPool.load(tmp_path / "old.pt")
    assert (pool.space, len(pool), pool.info["epochs"]) == ("normalized", 2, 2)
    pool.check_compatible("digits", SHAPE, MEAN, STD, "normalized")
    pool.check_compatible("digits", SHAPE, MEAN, STD, "pixels")  # pixels are normalised on the way in
    x = torch.randn(3, *SHAPE)
    assert torch.equal(pool.network_at(1)(x), nets(2)[1](x))


# ------------------------------------------------------------------------------------------------ refusals


def test_missing_corrupt_foreign_newer_and_damaged_files_are_clear_errors(path: Path, tmp_path: Path) -> None:
    missing = tmp_path / "pools" / "nope.pt"
    with pytest.raises(FileNotFoundError, match=r"proxy pool .* does not exist: create one with `lightning-dd pre"):
        ProxyPool.load(missing)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:1500])
    for bad in (garbage, truncated):
        with pytest.raises(ValueError, match="is not a readable lightning_dd proxy pool") as info:
            ProxyPool.load(bad)
        assert str(bad) in str(info.value)
    raw = torch.load(path, weights_only=True)
    cases = {
        "foreign": ({"state_dict": {}},
                    r"not a lightning_dd proxy pool \(expected format='lightning_dd.proxy_pool', found format=None\)"),
        "list": ([1, 2], r"is not a lightning_dd proxy pool .*found a list"),
        "newer": ({**raw, "format_version": 2}, r"format_version 2, newer than this lightning_dd reads \(<= 1\): "
                                                r"upgrade lightning_dd"),
        "no_version": ({**raw, "format_version": "1"}, r"damaged lightning_dd proxy pool: format_version '1'"),
        "no_dataset": ({k: v for k, v in raw.items() if k != "dataset"}, r"damaged .*missing .*\['dataset'\]"),
        "no_payload": ({k: v for k, v in raw.items() if k != "state_dicts"}, r"damaged .*\['state_dicts'\]"),
        "bad_entry": ({**raw, "state_dicts": [{"w": 1.0}]}, r"damaged .*state_dicts\[0\] is not a state dict"),
        "empty": ({**raw, "state_dicts": []}, r"damaged .*at least one entry"),
        "bad_space": ({**raw, "space": "hsv"}, r"damaged .*space must be one of \('normalized', 'pixels', 'zca'\)"),
    }
    for name, (content, message) in cases.items():
        file = tmp_path / f"{name}.pt"
        torch.save(content, file)
        with pytest.raises(ValueError, match=message) as info:
            ProxyPool.load(file)
        assert str(file) in str(info.value), name


def test_incompatible_data_is_named_on_both_sides(path: Path) -> None:
    pool = ProxyPool.load(path)
    pool.check_compatible("digits", SHAPE, MEAN, STD, "normalized", num_classes=K)
    pool.check_compatible("digits", SHAPE, MEAN, STD, "zca")  # a normalised pool takes ZCA images (via the inverse)
    cases = [
        (("mnist", SHAPE, MEAN, STD, "normalized"), {}, r"dataset 'digits' \(run: 'mnist'\)"),
        (("digits", (1, 16, 16), MEAN, STD, "normalized"), {}, r"image shape \(1, 8, 8\) \(run: \(1, 16, 16\)\)"),
        (("digits", SHAPE, (0.5,), STD, "normalized"), {}, r"normalisation mean=\[0.3\] std=\[0.4\] \(run: mean="),
        (("digits", SHAPE, MEAN, STD, "normalized"), {"num_classes": 100}, r"10 classes \(run: 100\)"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            pool.check_compatible(*args, **kwargs)
        text = str(info.value)
        assert text.startswith(f"proxy pool {path} was made for")
        assert f"lightning-dd pretrain --data.dataset {args[0]}" in text
    with pytest.raises(ValueError, match=r"^my pool was made for dataset 'digits' \(run: 'svhn'\); image shape"):
        pool.check_compatible("svhn", (3, 32, 32), (0.1,) * 3, (0.2,) * 3, "normalized", source="my pool")


def test_bad_constructor_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="either its networks or their state_dicts"):
        ProxyPool(None, "convnet", "digits", SHAPE, K, MEAN, STD)
    with pytest.raises(ValueError, match="at least one entry"):
        ProxyPool([], "convnet", "digits", SHAPE, K, MEAN, STD)
    with pytest.raises(ValueError, match=r"one value per channel \(C=1\), got mean=\[0.1, 0.2\]"):
        make_pool(mean=(0.1, 0.2))
    with pytest.raises(ValueError, match=r"image_shape must be \(C, H, W\)"):
        make_pool(image_shape=(8, 8))
    with pytest.raises(ValueError, match=r"info\['when'\] must hold plain values .* got object"):
        make_pool(info={"when": object()})  # would not survive torch.load(weights_only=True)


# ------------------------------------------------------------------------------------------------ lazy devices


def test_networks_are_built_lazily_once_per_device_and_index(path: Path) -> None:
    state = torch.get_rng_state()
    pool = ProxyPool.load(path)
    assert pool.materialized_devices() == ()  # reading the file builds nothing
    second = pool.network_at(1)
    assert pool.materialized_devices() == (torch.device("cpu"),)
    assert pool.network_at(1) is second  # built once, then cached
    on_meta = pool.network_at(1, "meta")  # a second device gets its own copy, built on first use there
    assert on_meta is not second and next(on_meta.parameters()).device.type == "meta"
    assert pool.network_at(1, "meta") is on_meta
    assert set(pool.materialized_devices()) == {torch.device("cpu"), torch.device("meta")}
    everything = pool.networks_on("cpu")
    assert everything[1] is second and len(everything) == 3 and pool.networks == everything
    assert torch.equal(torch.get_rng_state(), state)  # building networks never draws from the global RNG
    with pytest.raises(IndexError, match="has 3 entries, got index 3"):
        pool.network_at(3)


def test_sample_draws_one_index_and_builds_only_that_network(path: Path) -> None:
    pool = ProxyPool.load(path)
    g, replay = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    net = pool.sample(g, device="meta")
    index = int(torch.randint(3, (1,), generator=replay))
    assert net is pool.network_at(index, "meta")
    assert pool.materialized_devices() == (torch.device("meta"),)
    assert torch.equal(g.get_state(), replay.get_state())


def test_in_memory_pools_keep_their_networks_and_moved_networks_become_the_default(tmp_path: Path) -> None:
    given = nets(2)
    pool = ProxyPool(given, "convnet", "digits", SHAPE, K, MEAN, STD)
    assert pool.networks[0] is given[0] and not given[0].training  # frozen in place, not copied
    assert pool.device == device_key("cpu")
    pool.networks = [net.to("meta") for net in pool.networks]  # what a caller moving the pool does
    assert pool.device == torch.device("meta") and pool.networks[1] is given[1]
    assert pool.materialized_devices() == (torch.device("meta"),)
    # the stored weights are unchanged by the move: the saved file still has the real weights
    x = torch.randn(2, *SHAPE)
    reference = nets(2)[1]
    assert torch.equal(ProxyPool.load(pool.save(tmp_path / "p.pt")).network_at(1)(x), reference(x))
    with pytest.raises(ValueError, match="holds 2 networks, got 1"):
        pool.networks = pool.networks[:1]


def test_networks_are_never_registered_as_submodules(path: Path) -> None:
    pool = ProxyPool.load(path)
    pool.networks_on("cpu")
    holder = nn.Module()
    holder.pool = pool  # type: ignore[assignment]  # a plain attribute: ProxyPool is not a Module
    assert not list(holder.parameters()) and not holder.state_dict() and not list(holder.children())
    regularizer = CMIRegularizer(pool, 1.0)
    regularizer.pool_source  # noqa: B018
    assert not list(regularizer.parameters()) and not list(regularizer.buffers())
    assert not any(isinstance(m, type(pool.networks[0])) for m in regularizer.modules())


# ------------------------------------------------------------------------------------------------ generic base


class FlatTrajectories(PoolFile):
    """A second subclass, shaped like MTT expert buffers: each entry a list of flat parameter vectors per epoch."""

    format_name = "tests.flat_trajectories"
    format_version = 2
    kind = "trajectory buffer"
    payload_key = "trajectories"

    def _materialize(self, entry: Any, device: torch.device) -> list[Tensor]:
        return [t.to(device) for t in entry]

    @classmethod
    def _from_file(cls, entries: list[Any], header: dict[str, Any], device: torch.device) -> FlatTrajectories:
        return cls(entries, device=device, **header)


def test_the_base_is_generic_over_its_payload(tmp_path: Path) -> None:
    flat = [[torch.randn(7) for _ in range(3)] for _ in range(2)]  # 2 experts x 3 epochs
    buffer = FlatTrajectories(flat, "convnet", "cifar10", (3, 32, 32), 10, (0.5,) * 3, (0.25,) * 3, space="zca",
                              info={"epochs": 3})
    loaded = FlatTrajectories.load(buffer.save(tmp_path / "experts.pt"))
    assert (len(loaded), loaded.space, loaded.info) == (2, "zca", {"epochs": 3})
    on_meta = loaded.materialized(1, "meta")
    assert len(on_meta) == 3 and all(t.device.type == "meta" for t in on_meta)
    assert all(torch.equal(a, b) for a, b in zip(loaded.materialized(1), flat[1], strict=True))
    with pytest.raises(ValueError, match=r"is not a lightning_dd trajectory buffer .*found format='lightning_dd.proxy"):
        FlatTrajectories.load(make_pool().save(tmp_path / "pool.pt"))
    with pytest.raises(ValueError, match="is not a lightning_dd proxy pool"):
        ProxyPool.load(tmp_path / "experts.pt")
    with pytest.raises(FileNotFoundError, match=r"trajectory buffer .*missing.pt' does not exist"):
        FlatTrajectories.load(tmp_path / "missing.pt")


def test_freeze_drops_gradients_and_keeps_input_gradients() -> None:
    net = nets(1)[0]
    x = torch.randn(2, *SHAPE, requires_grad=True)
    net(x).sum().backward()
    assert any(p.grad is not None for p in net.parameters())
    freeze(net)
    assert all(p.grad is None and not p.requires_grad for p in net.parameters()) and not net.training
    x.grad = None
    net(x).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in net.parameters())
