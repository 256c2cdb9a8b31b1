"""Every shipped config parses through the real CLI parser, and configs of every dataset family instantiate."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from lightning_dd.callbacks import DistilledSetEvaluator
from lightning_dd.cli import fit_cli, main
from lightning_dd.data.registry import DATASET_NAMES
from lightning_dd.methods import DistillationModule
from tests import fixtures

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("**/*.yaml"))
METHOD_CLASSES = {"dm": "lightning_dd.methods.DM", "random": "lightning_dd.methods.RandomSelection"}

WRITERS: dict[str, Callable[[Path], object]] = {
    "mnist": lambda root: fixtures.write_mnist(root, train_per_class=1),
    "fashion_mnist": lambda root: fixtures.write_mnist(root, fashion=True, train_per_class=1),
    "svhn": lambda root: fixtures.write_svhn(root, train_per_class=1),
    "cifar10": lambda root: fixtures.write_cifar10(root, train_per_class=1),
    "cifar100": lambda root: fixtures.write_cifar100(root),
    "tiny_imagenet": lambda root: fixtures.write_tiny_imagenet(root, train_per_class=1),
    "image_folder": lambda root: fixtures.write_image_folder(root, ["a", "b"], train_per_class=1),
}


def config_id(path: Path) -> str:
    return str(path.relative_to(REPO / "configs"))


def read(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def to_instantiate() -> list[Path]:
    """One config per (folder, dataset): the smallest IPC (instantiating IPC 50 of CIFAR-100 is just slower)."""
    chosen: dict[tuple[Path, str], tuple[int, Path]] = {}
    for path in CONFIGS:
        dataset = read(path).get("data", {}).get("dataset", "digits")
        ipc = int(read(path).get("model", {}).get("init_args", {}).get("ipc", 10))
        key = (path.parent, dataset)
        if key not in chosen or ipc < chosen[key][0]:
            chosen[key] = (ipc, path)
    return sorted(p for _, p in chosen.values())


@pytest.fixture(autouse=True)
def _cli_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIGHTNING_DD_CACHE", str(tmp_path / "tensor-cache"))
    monkeypatch.setattr(sys, "argv", ["lightning-dd"])


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``dataset_root(name)``: a tiny copy of ``name`` in its original on-disk format, written once per module."""
    roots: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in roots:
            roots[name] = tmp_path_factory.mktemp(name)
            WRITERS[name](roots[name])
        return roots[name]

    return get


def test_configs_exist() -> None:
    assert len(CONFIGS) >= 30
    assert {p.parent.name for p in CONFIGS} >= {"dm", "random"}


@pytest.mark.parametrize("path", CONFIGS, ids=config_id)
def test_config_parses_and_prints(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(path), "--print_config"])
    assert info.value.code in (0, None), capsys.readouterr().err
    resolved = yaml.safe_load(capsys.readouterr().out)
    class_path = resolved["model"]["class_path"]
    module, _, name = class_path.rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), name), DistillationModule)
    assert resolved["data"]["dataset"] in DATASET_NAMES
    assert isinstance(resolved["seed_everything"], int)
    assert resolved["trainer"]["max_steps"] >= 1
    # names follow <method>/<dataset>_ipc<N>.yaml (or <method>_<dataset>_ipc<N>.yaml): the content must agree
    match = re.fullmatch(r"(?:(dm|random)_)?(\w+?)_ipc(\d+)", path.stem)
    if match:
        method = match.group(1) or path.parent.name
        assert resolved["data"]["dataset"] == match.group(2)
        assert resolved["model"]["init_args"]["ipc"] == int(match.group(3))
        if method in METHOD_CLASSES:
            assert class_path == METHOD_CLASSES[method]


@pytest.mark.filterwarnings("ignore:batch_real=.*exceeds the smallest class")
@pytest.mark.parametrize("path", to_instantiate(), ids=config_id)
def test_config_instantiates_on_a_fixture(path: Path, tmp_path: Path, dataset_root: Callable[[str], Path]) -> None:
    raw = read(path)
    dataset = raw["data"]["dataset"]
    args = ["--config", str(path), "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)]
    if dataset in WRITERS:
        args += ["--data.root", str(dataset_root(dataset))]
    cli = fit_cli(args, run=False)
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    module, _, name = raw["model"]["class_path"].rpartition(".")
    assert type(model) is getattr(importlib.import_module(module), name)
    assert isinstance(model, DistillationModule)
    assert data.dataset == dataset
    assert model.num_classes == data.num_classes  # linked from the data
    assert tuple(model.synthetic.image_shape) == tuple(data.image_shape)
    assert model.ipc == raw["model"]["init_args"]["ipc"]
    assert model.hparams.seed == raw.get("seed_everything", 0)
    assert trainer.max_steps == raw["trainer"]["max_steps"]
    wanted = [c["class_path"] for c in raw["trainer"].get("callbacks", [])]
    if "lightning_dd.callbacks.DistilledSetEvaluator" in wanted:
        (evaluator,) = [c for c in trainer.callbacks if isinstance(c, DistilledSetEvaluator)]
        init = next(c for c in raw["trainer"]["callbacks"] if c["class_path"].endswith("DistilledSetEvaluator"))
        assert evaluator.epochs == init["init_args"]["epochs"]
        assert evaluator.num_students == init["init_args"]["num_students"]
    data.setup("fit")  # the fixture is found and read in its original format
    assert data.store.images.shape[1:] == data.image_shape
