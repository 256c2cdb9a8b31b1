"""The distilled-set artifact: round trip, plain-PyTorch loading (README snippet), atomic writes, corrupt files."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO

import pytest
import torch

import lightning_dd
import lightning_dd._atomic
from lightning_dd.artifact import FORMAT, FORMAT_VERSION, DistilledSet

README = Path(__file__).resolve().parents[1] / "README.md"


def make_set(n_classes: int = 3, ipc: int = 2, channels: int = 3, size: int = 4, **kwargs: object) -> DistilledSet:
    g = torch.Generator().manual_seed(0)
    n = n_classes * ipc
    fields: dict[str, object] = {
        "images": torch.randn(n, channels, size, size, generator=g),
        "labels": torch.arange(n_classes).repeat_interleave(ipc),
        "dataset": "cifar10",
        "class_names": tuple(f"class_{i}" for i in range(n_classes)),
        "mean": (0.1, 0.2, 0.3)[:channels],
        "std": (0.4, 0.5, 0.6)[:channels],
        "method": "DM",
        "ipc": ipc,
        "seed": 7,
    }
    fields.update(kwargs)
    return DistilledSet(**fields)  # type: ignore[arg-type]


def full_set() -> DistilledSet:
    g = torch.Generator().manual_seed(1)
    return make_set(
        soft_labels=torch.randn(6, 3, generator=g),
        lr=0.0123,
        space="zca",
        zca={"mean": torch.randn(48, generator=g), "transform": torch.randn(48, 48, generator=g)},
        factor=2,
        dsa_strategy="color_crop",
        hparams={"ipc": 2, "network": "convnet", "nested": {"a": [1, 2.5, None, True]}},
        version="9.9.9",
    )


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    original = full_set()
    path = original.save(tmp_path / "sub" / "distilled.pt")
    assert path == tmp_path / "sub" / "distilled.pt"
    loaded = DistilledSet.load(path)
    assert torch.equal(loaded.images, original.images)
    assert loaded.images.dtype == torch.float32
    assert torch.equal(loaded.labels, original.labels)
    assert loaded.labels.dtype == torch.int64
    assert loaded.soft_labels is not None and torch.equal(loaded.soft_labels, original.soft_labels)
    assert loaded.zca is not None and original.zca is not None
    assert set(loaded.zca) == set(original.zca)
    assert all(torch.equal(loaded.zca[k], original.zca[k]) for k in original.zca)
    assert loaded.lr == pytest.approx(0.0123)
    for name in (
        "dataset",
        "class_names",
        "mean",
        "std",
        "method",
        "ipc",
        "seed",
        "space",
        "factor",
        "dsa_strategy",
        "hparams",
        "version",
    ):
        assert getattr(loaded, name) == getattr(original, name), name
    assert isinstance(loaded.class_names, tuple) and isinstance(loaded.mean, tuple)
    assert loaded.num_classes == 3 and loaded.image_shape == (3, 4, 4)


def test_optional_fields_round_trip_as_none_and_version_defaults(tmp_path: Path) -> None:
    original = make_set()
    assert original.version == lightning_dd.__version__
    loaded = DistilledSet.load(original.save(tmp_path / "d.pt"))
    assert loaded.soft_labels is None and loaded.lr is None and loaded.zca is None
    assert loaded.version == lightning_dd.__version__


def test_file_loads_with_plain_torch_weights_only(tmp_path: Path) -> None:
    original = full_set()
    original.save(tmp_path / "d.pt")
    d = torch.load(tmp_path / "d.pt", weights_only=True)
    assert d["format"] == FORMAT and d["format_version"] == FORMAT_VERSION
    assert torch.equal(d["images"], original.images) and torch.equal(d["labels"], original.labels)
    assert torch.equal(d["soft_labels"], original.soft_labels)
    assert d["class_names"] == ["class_0", "class_1", "class_2"]
    assert d["mean"] == [0.1, 0.2, 0.3] and d["std"] == [0.4, 0.5, 0.6]
    assert d["image_shape"] == [3, 4, 4]
    assert d["lr"] == pytest.approx(0.0123)
    assert d["method"] == "DM" and d["dataset"] == "cifar10" and d["ipc"] == 2 and d["seed"] == 7


def test_readme_snippet_runs_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    snippets = [b for b in blocks if "weights_only=True" in b]
    assert len(snippets) == 1, "README must contain exactly one python block loading the artifact"
    snippet = snippets[0]
    match = re.search(r'torch\.load\("([^"]+)"', snippet)
    assert match is not None
    original = make_set()
    monkeypatch.chdir(tmp_path)
    original.save(tmp_path / match.group(1))
    namespace: dict[str, object] = {}
    exec(compile(snippet, str(README), "exec"), namespace)
    assert torch.equal(namespace["images"], original.images)  # type: ignore[arg-type]
    assert torch.equal(namespace["labels"], original.labels)  # type: ignore[arg-type]
    d = namespace["d"]
    assert isinstance(d, dict) and d["mean"] == list(original.mean) and d["std"] == list(original.std)


def _failing_save(obj: object, f: BinaryIO, *args: object, **kwargs: object) -> None:
    f.write(b"PK\x03\x04 half written")
    f.flush()
    raise OSError("disk full (simulated)")


def test_failed_write_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lightning_dd._atomic.torch, "save", _failing_save)
    with pytest.raises(OSError, match="disk full"):
        make_set().save(tmp_path / "distilled.pt")
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_existing_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "distilled.pt"
    original = make_set()
    original.save(path)
    before = path.read_bytes()
    monkeypatch.setattr(lightning_dd._atomic.torch, "save", _failing_save)
    with pytest.raises(OSError, match="disk full"):
        make_set(seed=99).save(path)
    assert os.listdir(tmp_path) == ["distilled.pt"]
    assert path.read_bytes() == before
    assert DistilledSet.load(path).seed == 7


def test_save_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "distilled.pt"
    make_set().save(path)
    make_set(seed=3).save(path)
    assert os.listdir(tmp_path) == ["distilled.pt"]
    assert DistilledSet.load(path).seed == 3


def _truncated(path: Path) -> None:
    make_set().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _random_bytes(path: Path) -> None:
    noise = torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    path.write_bytes(noise.numpy().tobytes())


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _foreign_dict(path: Path) -> None:
    torch.save({"images": torch.zeros(1, 1, 2, 2), "labels": torch.zeros(1, dtype=torch.long)}, path)


def _foreign_list(path: Path) -> None:
    torch.save([torch.zeros(2)], path)


@pytest.mark.parametrize("write", [_truncated, _random_bytes, _empty, _foreign_dict, _foreign_list])
def test_corrupt_or_foreign_file_raises_value_error_naming_path(tmp_path: Path, write: object) -> None:
    path = tmp_path / "broken.pt"
    write(path)  # type: ignore[operator]
    with pytest.raises(ValueError, match=r"broken\.pt") as info:
        DistilledSet.load(path)
    assert "distilled set" in str(info.value)


def test_missing_path_raises_file_not_found_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothing_here\.pt"):
        DistilledSet.load(tmp_path / "nothing_here.pt")
    (tmp_path / "a_folder").mkdir()
    with pytest.raises(IsADirectoryError, match=r"a_folder' is a directory; give the artifact file"):
        DistilledSet.load(tmp_path / "a_folder")


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    d = make_set().to_dict()
    d["format_version"] = FORMAT_VERSION + 1
    torch.save(d, tmp_path / "future.pt")
    with pytest.raises(ValueError, match=r"future\.pt.*format_version.*upgrade"):
        DistilledSet.load(tmp_path / "future.pt")


def test_missing_fields_are_named(tmp_path: Path) -> None:
    d = make_set().to_dict()
    del d["labels"], d["seed"]
    torch.save(d, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match=r"partial\.pt.*\['labels', 'seed'\]"):
        DistilledSet.load(tmp_path / "partial.pt")


def test_loaded_file_is_validated(tmp_path: Path) -> None:
    d = make_set().to_dict()
    d["labels"] = d["labels"][:-1]
    torch.save(d, tmp_path / "inconsistent.pt")
    with pytest.raises(ValueError, match="labels must be"):
        DistilledSet.load(tmp_path / "inconsistent.pt")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images": torch.zeros(6, 4, 4)}, r"images must be \(N, C, H, W\), got shape \(6, 4, 4\)"),
        ({"labels": torch.zeros(5, dtype=torch.long)}, r"labels must be \(6,\), got \(5,\)"),
        ({"labels": torch.zeros(6, 1, dtype=torch.long)}, r"labels must be \(6,\), got \(6, 1\)"),
        ({"mean": (0.5,)}, "mean/std need 3 channels"),
        ({"std": (0.5, 0.5)}, "mean/std need 3 channels"),
        ({"soft_labels": torch.zeros(5, 3)}, r"soft_labels must be \(6, 3\), got \(5, 3\)"),
        ({"soft_labels": torch.zeros(6, 4)}, r"soft_labels must be \(6, 3\), got \(6, 4\)"),
        ({"labels": torch.tensor([0, 0, 1, 1, 2, 3])}, r"labels must lie in \[0, 3\)"),
        ({"labels": torch.tensor([0, 0, 1, 1, 2, -1])}, r"labels must lie in \[0, 3\)"),
    ],
)
def test_post_init_validates_shapes(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_set(**kwargs)


def test_the_artifact_records_how_it_came_about(tmp_path: Path) -> None:
    from lightning_dd.data import RealDataModule
    from tests.helpers import digits_data, quiet_trainer, tiny_dm

    model = tiny_dm(ipc=2, artifact_path=str(tmp_path / "d.pt"))
    data = digits_data(batch_real=8)
    quiet_trainer(tmp_path, max_steps=3).fit(model, data)
    record = DistilledSet.load(tmp_path / "d.pt").provenance
    assert (record["iterations"], record["batch_real"]) == (3, 8)
    assert set(record["versions"]) == {"lightning_dd", "torch", "lightning", "python"}
    # the init indices are those of the images the run started from (the random baseline of the seed)
    fresh = RealDataModule("digits")
    fresh.setup("fit")
    baseline = tiny_dm(ipc=2, optimizer=lambda p: torch.optim.SGD(p, lr=0.0))
    quiet_trainer(tmp_path / "b", max_steps=1).fit(baseline, digits_data(batch_real=8))
    initial = fresh.normalize(fresh.store.images[torch.tensor(record["init_indices"])])
    torch.testing.assert_close(initial, baseline.synthetic.images.detach())
    assert fresh.store.labels[torch.tensor(record["init_indices"])].tolist() == [c for c in range(10) for _ in "ab"]
