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
REGULARIZER_CLASSES = {
    "cmi": "lightning_dd.regularizers.CMIRegularizer",
    "iid": "lightning_dd.regularizers.IIDRegularizer",
}
#: fragments (configs/regularizers/<name>.yaml) are checked composed onto this method config
FRAGMENTS = REPO / "configs" / "regularizers"
FRAGMENT_BASE = REPO / "configs" / "dm" / "cifar10_ipc10.yaml"
#: the official λ: DM+CMI per (dataset, IPC) (methods.md §3.3), DM+IID (λ_CC, λ_CM) (§4.1, CIFAR-10, reused elsewhere)
DM_CMI_WEIGHT = {
    ("svhn", 10): 18000, ("svhn", 50): 500, ("cifar10", 10): 8000, ("cifar10", 50): 2000,
    ("cifar100", 10): 2000, ("cifar100", 50): 500,
}  # fmt: skip
DM_IID_WEIGHTS = (0.05, 0.01)

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


def is_fragment(path: Path) -> bool:
    return path.parent == FRAGMENTS


def config_args(path: Path) -> list[str]:
    """``--config`` arguments of ``path``: a fragment goes after its base method config, as documented in it."""
    return ["--config", str(FRAGMENT_BASE), "--config", str(path)] if is_fragment(path) else ["--config", str(path)]


def base_raw(path: Path) -> dict:
    """The raw YAML holding the method, data and trainer of ``path`` (the base config for a fragment)."""
    return read(FRAGMENT_BASE if is_fragment(path) else path)


def expected_regularizers(path: Path) -> list[str]:
    """Regularizers (keys of REGULARIZER_CLASSES, in order) a config must list: those its folder names
    (``<method>_<reg>[_<reg>]/``, e.g. ``dm_cmi_iid`` -> cmi, iid), the fragment's own name, none elsewhere."""
    if is_fragment(path):
        return [path.stem]
    method, *regs = path.parent.name.split("_")
    return regs if method in METHOD_CLASSES else []


def check_regularizers(regs: list[dict], path: Path, dataset: str, ipc: int, method: str) -> None:
    """Resolved ``model.init_args.regularizers`` agree with the folder/file name and the official λ tables."""
    kinds = expected_regularizers(path)
    assert [r["class_path"] for r in regs] == [REGULARIZER_CLASSES[k] for k in kinds]
    for kind, reg in zip(kinds, regs, strict=True):
        args = reg["init_args"]
        assert Path(args["pool"]).name.startswith(f"{dataset}_"), f"pool {args['pool']} is not a {dataset} pool"
        if method == "dm" and kind == "cmi":
            assert args["weight"] == DM_CMI_WEIGHT[(dataset, ipc)]
        if method == "dm" and kind == "iid":
            assert (args["weight_cc"], args["weight_cm"]) == DM_IID_WEIGHTS


def to_instantiate() -> list[Path]:
    """One config per (folder, dataset): the smallest IPC (instantiating IPC 50 of CIFAR-100 is just slower)."""
    chosen: dict[tuple[Path, str, str], tuple[int, Path]] = {}
    for path in CONFIGS:
        raw = base_raw(path)
        dataset = raw.get("data", {}).get("dataset", "digits")
        ipc = int(raw.get("model", {}).get("init_args", {}).get("ipc", 10))
        key = (path.parent, dataset, path.stem if is_fragment(path) else "")
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
    assert {p.parent.name for p in CONFIGS} >= {"dm", "random", "dm_cmi", "dm_iid", "dm_cmi_iid", "regularizers"}
    for folder in ("dm_cmi", "dm_iid", "dm_cmi_iid"):  # every cell of the official λ tables has a ready config
        for dataset, ipc in DM_CMI_WEIGHT:
            assert (REPO / "configs" / folder / f"{dataset}_ipc{ipc}.yaml").is_file()
    assert {p.stem for p in CONFIGS if is_fragment(p)} == set(REGULARIZER_CLASSES)


@pytest.mark.parametrize("path", CONFIGS, ids=config_id)
def test_config_parses_and_prints(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["fit", *config_args(path), "--print_config"])
    assert info.value.code in (0, None), capsys.readouterr().err
    resolved = yaml.safe_load(capsys.readouterr().out)
    class_path = resolved["model"]["class_path"]
    module, _, name = class_path.rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), name), DistillationModule)
    assert resolved["data"]["dataset"] in DATASET_NAMES
    assert isinstance(resolved["seed_everything"], int)
    assert resolved["trainer"]["max_steps"] >= 1
    # names follow <method>[_<regularizer>...]/<dataset>_ipc<N>.yaml (or <method>_<dataset>_ipc<N>.yaml): the
    # content must agree, including the regularizers the folder names and their official λ
    match = re.fullmatch(r"(?:(dm|random)_)?(\w+?)_ipc(\d+)", path.stem)
    method = path.parent.name.split("_")[0]
    if match:
        method = match.group(1) or method
        assert resolved["data"]["dataset"] == match.group(2)
        assert resolved["model"]["init_args"]["ipc"] == int(match.group(3))
        if method in METHOD_CLASSES:
            assert class_path == METHOD_CLASSES[method]
    if is_fragment(path):
        method = FRAGMENT_BASE.parent.name
    regs = resolved["model"]["init_args"].get("regularizers") or []
    check_regularizers(regs, path, resolved["data"]["dataset"], resolved["model"]["init_args"]["ipc"], method)


@pytest.mark.parametrize("order", [("cmi", "iid"), ("iid", "cmi")])
def test_regularizer_fragments_compose(order: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Fragments append to the method's list (``regularizers+:``) in the order given, keeping the method config."""
    args = ["--config", str(FRAGMENT_BASE)]
    for name in order:
        args += ["--config", str(FRAGMENTS / f"{name}.yaml")]
    # options given right after a fragment act on the item it appended (the usage its header documents)
    args[4:4] = ["--model.regularizers.weight_cc" if order[0] == "iid" else "--model.regularizers.weight", "7"]
    with pytest.raises(SystemExit):
        main(["fit", *args, "--print_config"])
    resolved = yaml.safe_load(capsys.readouterr().out)
    regs = resolved["model"]["init_args"]["regularizers"]
    assert [r["class_path"] for r in regs] == [REGULARIZER_CLASSES[name] for name in order]
    first = regs[0]["init_args"]
    assert first.get("weight", first.get("weight_cc")) == 7
    assert resolved["model"]["class_path"] == METHOD_CLASSES["dm"]
    assert resolved["model"]["init_args"]["ipc"] == read(FRAGMENT_BASE)["model"]["init_args"]["ipc"]
    assert [c["class_path"] for c in resolved["trainer"]["callbacks"]] == [
        c["class_path"] for c in read(FRAGMENT_BASE)["trainer"]["callbacks"]
    ]


@pytest.mark.filterwarnings("ignore:batch_real=.*exceeds the smallest class")
@pytest.mark.parametrize("path", to_instantiate(), ids=config_id)
def test_config_instantiates_on_a_fixture(path: Path, tmp_path: Path, dataset_root: Callable[[str], Path]) -> None:
    raw = base_raw(path)
    dataset = raw["data"]["dataset"]
    args = [*config_args(path), "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)]
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
    # regularizers are built without reading their pool (created later with `lightning-dd pretrain`)
    kinds = expected_regularizers(path)
    assert [type(r).__name__ for r in model.regularizers] == [REGULARIZER_CLASSES[k].rpartition(".")[2] for k in kinds]
    assert all(str(r.pool_source).endswith(f"{dataset}_resnet18.pt") for r in model.regularizers)
    assert not list(model.regularizers.parameters())
    data.setup("fit")  # the fixture is found and read in its original format
    assert data.store.images.shape[1:] == data.image_shape
