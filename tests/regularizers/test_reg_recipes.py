"""Named proxy pretraining recipes (CMIDD / IID ``pre_model.py``): their values, ``pretrain_proxies(recipe=...)`` with
overrides, and ``lightning-dd pretrain --recipe`` where explicit flags still override the recipe."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from lightning_dd.cli import main
from lightning_dd.pretrained import DEFAULT_PRETRAIN_RECIPE, PRETRAIN_RECIPES, ProxyPool, pretrain_proxies
from lightning_dd.training import TrainRecipe


@pytest.fixture(autouse=True)
def _cli_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_DD_CACHE", str(tmp_path / "tensor-cache"))
    monkeypatch.setattr(sys, "argv", ["lightning-dd"])


def test_the_published_recipes() -> None:
    assert DEFAULT_PRETRAIN_RECIPE == "cmi"
    assert set(PRETRAIN_RECIPES) == {"cmi", "iid"}
    for name, weight_decay in (("cmi", 1e-3), ("iid", 5e-4)):
        recipe = PRETRAIN_RECIPES[name]
        assert recipe.network == "resnet18"  # the instance-norm ResNet18 of both repositories
        assert recipe.train == TrainRecipe(epochs=40, lr=0.01, momentum=0.9, weight_decay=weight_decay,
                                           batch_size=256, lr_milestones=(), dsa_strategy="none")
    assert "CMIDD" in PRETRAIN_RECIPES["cmi"].source and "IID" in PRETRAIN_RECIPES["iid"].source


def test_pretrain_proxies_takes_the_recipe_and_explicit_overrides() -> None:
    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(40, 1, 8, 8, generator=g), torch.randint(0, 4, (40,), generator=g)
    common = {"dataset": "toy", "num_classes": 4, "mean": (0.0,), "std": (1.0,), "num_models": 1, "epochs": 1,
              "network": "mlp", "batch_size": 16, "log": lambda line: None}
    iid = pretrain_proxies(images, labels, recipe="iid", **common)
    assert (iid.info["recipe"], iid.info["weight_decay"], iid.info["lr"], iid.info["epochs"]) == ("iid", 5e-4, 0.01, 1)
    assert (iid.network, iid.info["batch_size"], iid.info["augmentation"], iid.space) == ("mlp", 16, "none",
                                                                                         "normalized")
    default = pretrain_proxies(images, labels, **common)
    assert (default.info["recipe"], default.info["weight_decay"]) == ("cmi", 1e-3)
    same_as_iid = pretrain_proxies(images, labels, weight_decay=5e-4, **common)
    assert torch.equal(same_as_iid.networks[0].classifier.weight, iid.networks[0].classifier.weight)
    assert not torch.equal(default.networks[0].classifier.weight, iid.networks[0].classifier.weight)
    with pytest.raises(ValueError, match="unknown pretraining recipe 'dc'; allowed: cmi, iid"):
        pretrain_proxies(images, labels, recipe="dc", **common)


def pretrain(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, *flags: str) -> tuple[dict, ProxyPool]:
    output = tmp_path / f"{name}.pt"
    main(["pretrain", "--data.dataset", "digits", "--output", str(output), "--network", "convnet", "--num_models",
          "1", "--epochs", "1", "--max_images_per_class", "5", "--batch_size", "50", "--trainer.accelerator", "cpu",
          *flags])
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return json.loads(line), ProxyPool.load(output)


def test_cli_recipe_sets_the_defaults_and_flags_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result, pool = pretrain(tmp_path, capsys, "default")
    assert (result["recipe"], result["weight_decay"], pool.info["weight_decay"]) == ("cmi", 1e-3, 1e-3)
    result, pool = pretrain(tmp_path, capsys, "iid", "--recipe", "iid")
    assert (result["recipe"], pool.info["recipe"], pool.info["weight_decay"]) == ("iid", "iid", 5e-4)
    assert (pool.info["epochs"], pool.info["batch_size"], pool.network) == (1, 50, "convnet")  # flags win
    _, pool = pretrain(tmp_path, capsys, "override", "--recipe", "iid", "--weight_decay", "0.002", "--lr", "0.05")
    assert (pool.info["weight_decay"], pool.info["lr"], pool.info["momentum"]) == (0.002, 0.05, 0.9)
    with pytest.raises(SystemExit) as info:
        main(["pretrain", "--output", str(tmp_path / "x.pt"), "--recipe", "dc"])
    assert info.value.code == 2 and "unknown --recipe 'dc'; allowed: cmi, iid" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_pretrain_says_nothing_about_batch_real_and_writes_a_umask_mode_pool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pretrain draws no class-balanced batches: the distillation batch size is none of its business."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result, _ = pretrain(tmp_path, capsys, "quiet")
    assert not [w for w in caught if "batch_real" in str(w.message)]
    mask = os.umask(0)
    os.umask(mask)
    assert (Path(result["pool"]).stat().st_mode & 0o777) == 0o666 & ~mask
