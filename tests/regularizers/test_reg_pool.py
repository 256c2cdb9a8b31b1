"""Proxy pools: file round trip, frozen and unregistered networks, refusal of pools made for other data, missing and
corrupt files, and the mapping of synthetic images into the proxies' input normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_dd.losses import CMILoss
from lightning_dd.methods import DM
from lightning_dd.pretrained import ProxyPool, to_proxy_input
from lightning_dd.regularizers import CMIRegularizer, IIDRegularizer, RegularizerContext
from tests.helpers import digits_data, quiet_trainer, tiny_dm
from tests.regularizers.pools import digits_pool


def fit(model: DM, root: Path, steps: int = 2) -> DM:
    quiet_trainer(root, max_steps=steps).fit(model, digits_data())
    return model


def relabelled(pool: ProxyPool, **header: object) -> ProxyPool:
    """The same networks under another header (dataset, mean, std, ...)."""
    fields = {"network": pool.network, "dataset": pool.dataset, "image_shape": pool.image_shape,
              "num_classes": pool.num_classes, "mean": pool.mean, "std": pool.std, "info": pool.info, **header}
    return ProxyPool(None, state_dicts=pool.entries, **fields)  # type: ignore[arg-type]


def assert_frozen(pool: ProxyPool) -> None:
    for net in pool.networks:
        assert not net.training
        assert all(not p.requires_grad for p in net.parameters())


# ------------------------------------------------------------------------------------------------ round trip


def test_save_load_round_trip(pool: ProxyPool, pool_path: Path) -> None:
    loaded = ProxyPool.load(pool_path)
    assert len(loaded) == len(pool) == 2
    for fields in ("network", "dataset", "image_shape", "num_classes", "mean", "std", "info"):
        assert getattr(loaded, fields) == getattr(pool, fields), fields
    assert (loaded.dataset, loaded.image_shape, loaded.num_classes) == ("digits", (1, 8, 8), 10)
    for a, b in zip(loaded.networks, pool.networks, strict=True):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(
        loaded.networks[0].state_dict()["classifier.weight"], loaded.networks[1].state_dict()["classifier.weight"]
    )  # two distinct proxies
    assert pool.info["epochs"] == 2 and len(pool.info["train_accuracy"]) == 2
    assert_frozen(pool)
    assert_frozen(loaded)
    # the loaded networks compute what the trained ones do
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(loaded.networks[1].embed(x), pool.networks[1].embed(x))


def test_proxies_are_not_submodules_of_the_method(pool: ProxyPool, pool_path: Path, tmp_path: Path) -> None:
    plain = fit(tiny_dm(ipc=2), tmp_path / "plain")
    # one regularizer reading the file, one holding the in-memory pool (whose networks this test can inspect)
    model = fit(
        tiny_dm(ipc=2, regularizers=[CMIRegularizer(str(pool_path), 1e3), IIDRegularizer(pool, 0.05, 0.01)]),
        tmp_path / "reg",
    )
    assert model.state_dict().keys() == plain.state_dict().keys()
    assert not any("regularizers" in key for key in model.state_dict())
    params = list(model.parameters())
    assert len(params) == 1 and params[0] is model.synthetic.images
    assert not list(model.regularizers.parameters()) and not list(model.regularizers.buffers())
    # the proxies stayed frozen, in eval mode, and received no gradient
    assert_frozen(pool)
    assert all(p.grad is None for net in pool.networks for p in net.parameters())


def test_the_artifact_records_the_regularizers(pool_path: Path, tmp_path: Path) -> None:
    model = fit(tiny_dm(ipc=2, regularizers=[CMIRegularizer(str(pool_path), 1e3, every_n_steps=2)]), tmp_path)
    (recorded,) = model.distilled_set().hparams["regularizers"]
    assert recorded == {
        "class_path": "lightning_dd.regularizers.cmi.CMIRegularizer",
        "weights": {"cmi": 1e3},
        "pool": str(pool_path),
        "every_n_steps": 2,
        "output": "features",
        "temperature": 1.0,
        "reduction": "global",
        "augmented": False,
    }
    assert "regularizers" not in fit(tiny_dm(ipc=2), tmp_path / "plain", 1).distilled_set().hparams


# ------------------------------------------------------------------------------------------------ refusals


def test_pool_for_other_data_is_refused_with_a_clear_message(pool: ProxyPool, tmp_path: Path) -> None:
    other_dataset = relabelled(pool, dataset="mnist").save(tmp_path / "mnist.pt")
    other_norm = relabelled(pool, mean=(0.5,), std=(0.25,)).save(tmp_path / "norm.pt")
    other_size = digits_pool(image_size=16, per_class=5, num_models=1, epochs=1).save(tmp_path / "16px.pt")
    expected = {
        other_dataset: r"dataset 'mnist' \(run: 'digits'\)",
        other_norm: r"normalisation mean=\[0\.5\] std=\[0\.25\] \(run: mean=",
        other_size: r"image shape \(1, 16, 16\) \(run: \(1, 8, 8\)\)",
    }
    for path, message in expected.items():
        model = tiny_dm(ipc=2, regularizers=[CMIRegularizer(str(path), 1.0)])
        with pytest.raises(ValueError, match=message) as info:
            fit(model, tmp_path / path.stem, steps=1)
        text = str(info.value)
        assert str(path) in text and "lightning-dd pretrain --data.dataset digits" in text
    # the same pools pass the check for the data they were made for
    ProxyPool.load(other_dataset).check_compatible("mnist", (1, 8, 8), pool.mean, pool.std, "normalized")
    ProxyPool.load(other_size).check_compatible("digits", (1, 16, 16), pool.mean, pool.std, "normalized")


def test_missing_pool_file_names_the_path_and_the_pretrain_command(tmp_path: Path) -> None:
    missing = tmp_path / "pools" / "digits_resnet18.pt"
    with pytest.raises(FileNotFoundError, match="lightning-dd pretrain") as info:
        ProxyPool.load(missing)
    assert str(missing) in str(info.value)
    model = tiny_dm(ipc=2, regularizers=[IIDRegularizer(str(missing))])  # built without the file; fails on use
    with pytest.raises(FileNotFoundError, match="lightning-dd pretrain"):
        fit(model, tmp_path, steps=1)


def test_corrupt_or_foreign_pool_file_is_a_clear_error(pool_path: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match="is not a readable lightning_dd proxy pool") as info:
        ProxyPool.load(garbage)
    assert str(garbage) in str(info.value)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(pool_path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="is not a readable lightning_dd proxy pool"):
        ProxyPool.load(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="is not a lightning_dd proxy pool"):
        ProxyPool.load(foreign)


# ------------------------------------------------------------------------------------------------ input space


def test_to_proxy_input_normalises_pixels_and_refuses_zca() -> None:
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.3, 0.4)
    pixels = torch.rand(5, 3, 4, 4)
    x = to_proxy_input(pixels, "pixels", mean, std)
    for c in range(3):
        assert torch.allclose(x[:, c], (pixels[:, c] - mean[c]) / std[c])
    normalised = torch.randn(5, 3, 4, 4)
    assert to_proxy_input(normalised, "normalized", mean, std) is normalised
    with pytest.raises(ValueError, match="zca"):
        to_proxy_input(normalised, "zca", mean, std)


def test_cmi_of_a_pixel_space_set_equals_that_of_its_normalised_images(pool: ProxyPool) -> None:
    normalised = torch.randn(20, 1, 8, 8)
    labels = torch.arange(10).repeat_interleave(2)
    pixels = normalised * pool.std[0] + pool.mean[0]

    def context(images: torch.Tensor, space: str) -> RegularizerContext:
        return RegularizerContext(
            synthetic=images,
            labels=labels,
            num_classes=10,
            space=space,
            mean=pool.mean,
            std=pool.std,
            dataset="digits",
            image_shape=(1, 8, 8),
        )

    reg_a, reg_b = CMIRegularizer(pool, 1.0), CMIRegularizer(pool, 1.0)  # same seed: the same proxy is drawn
    from_pixels = reg_a.terms(context(pixels, "pixels"))["cmi"]
    from_normalised = reg_b.terms(context(normalised, "normalized"))["cmi"]
    assert float(from_normalised) > 0
    assert torch.allclose(from_pixels, from_normalised, rtol=1e-4)
    direct = [float(CMILoss()(normalised, labels, net, 10)) for net in pool.networks]
    assert float(from_normalised) in direct
    with pytest.raises(ValueError, match="zca"):
        CMIRegularizer(pool, 1.0).terms(context(normalised, "zca"))
