"""Dataset specs (data/datasets/<name>.py) and the layering of lightning_dd.data (no cycles, imports point down)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from lightning_dd.data import DATASET_NAMES, dataset_info, load_split
from lightning_dd.data.datasets import DATASETS, DatasetSpec
from lightning_dd.data.registry import EMBEDDED_DATASETS, download
from tests.fixtures import write_cifar10, write_image_folder, write_tiny_imagenet

DATA = Path(__file__).resolve().parents[2] / "lightning_dd" / "data"


def test_registry_is_the_dict_of_specs() -> None:
    assert tuple(DATASETS) == DATASET_NAMES
    assert EMBEDDED_DATASETS == ("digits",)
    for name, spec in DATASETS.items():
        assert isinstance(spec, DatasetSpec) and spec.name == name
        assert type(spec).__doc__ and type(spec).__module__ == f"lightning_dd.data.datasets.{name}"
        if not spec.info_needs_root:
            assert spec.info() == dataset_info(name) and spec.info().name == name


@pytest.mark.parametrize("name", [n for n in DATASET_NAMES if n != "digits"])
def test_find_in_empty_root_lists_the_layouts_of_the_message(tmp_path: Path, name: str) -> None:
    spec = DATASETS[name]
    for split in ("train", "test"):
        lookup = spec.find(tmp_path, split)
        assert lookup.reader is None and lookup.searched
        with pytest.raises(FileNotFoundError) as err:
            load_split(name, tmp_path, train=split == "train")
        for i, text in enumerate(lookup.searched, 1):
            assert f"  {i}. {text}" in str(err.value)


def test_find_returns_the_first_layout_present(tmp_path: Path) -> None:
    spec = DATASETS["cifar10"]
    write_image_folder(tmp_path / "cifar10", dataset_info("cifar10").class_names, size=(32, 32), train_per_class=1)
    lookup = spec.find(tmp_path, "train")
    assert lookup.reader is not None and len(lookup.reader()) == 10  # root/cifar10/train
    assert [t.split(":")[0] for t in lookup.searched] == ["original format", "image folder", "image folder"]
    expected = write_cifar10(tmp_path)
    original = spec.find(tmp_path, "train").reader
    assert original is not None and original().labels.tolist() == expected["train"].labels.tolist()
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        spec.read(tmp_path, "val")  # type: ignore[arg-type]


def test_digits_needs_nothing_on_disk(tmp_path: Path) -> None:
    spec = DATASETS["digits"]
    assert not spec.needs_root
    assert len(spec.read(None, "test")) == 359
    download("digits", tmp_path)
    download("image_folder", tmp_path)
    assert not any(tmp_path.iterdir())


def test_tiny_imagenet_info_reads_wnids(tmp_path: Path) -> None:
    write_tiny_imagenet(tmp_path, train_per_class=1)
    spec = DATASETS["tiny_imagenet"]
    assert spec.info_needs_root and spec.info(tmp_path) == dataset_info("tiny_imagenet", tmp_path)
    assert spec.find(tmp_path, "test").reader is not None


def _imports(path: Path) -> set[str]:
    """``lightning_dd.data`` modules imported anywhere in ``path`` (module level or inside functions)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lightning_dd.data"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lightning_dd.data"))
    return found


def _module_graph() -> dict[str, set[str]]:
    modules = {}
    for path in DATA.rglob("*.py"):
        parts = path.relative_to(DATA.parent.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return {m: {t for t in _imports(p) if t in modules and t != m} for m, p in modules.items()}


def test_no_import_cycles_in_data() -> None:
    graph = _module_graph()
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            assert state.get(t) != 1, f"import cycle: {' -> '.join([*stack[stack.index(t) :], t])}"
            if t not in state:
                visit(t, [*stack, t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("types", ("",)),  # imports nothing from lightning_dd.data
        ("cache", ("datasets", "registry", "real", "distilled", "image_folder")),
        ("decode", ("",)),
        ("image_folder", ("datasets", "registry", "real", "distilled")),
        ("datasets", ("registry", "real", "distilled")),
        ("registry", ("real", "distilled")),
        ("protocol", ("registry", "real", "distilled", "datasets")),
    ],
)
def test_imports_point_down(module: str, forbidden: tuple[str, ...]) -> None:
    graph = _module_graph()
    prefix = f"lightning_dd.data.{module}"
    for m, targets in graph.items():
        if m == prefix or m.startswith(prefix + "."):
            for t in targets:
                if t.startswith(prefix):
                    continue
                for f in forbidden:
                    assert not t.startswith(f"lightning_dd.data.{f}".rstrip(".")), f"{m} imports {t}"
