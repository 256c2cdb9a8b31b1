"""Who reads CIFAR / SVHN files: torchvision for the official release (md5 verified), our readers for re-packed copies.

The fixtures (tests/fixtures.py) are re-packed copies: same formats, other bytes, so other md5 sums than the official
release. They must be read by our readers and give exactly what an independent parse of the files gives. To see the
torchvision path without the 170 MB official files, one test points torchvision's table of official md5 sums at the
fixture's own files (torchvision's reference data, not our code), which makes them "official".
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import torch
import torchvision.datasets as tvd

from lightning_dd.data import dataset_info, load_split
from lightning_dd.data.datasets.cifar10 import read_cifar, read_torchvision_cifar
from lightning_dd.data.datasets.svhn import read_svhn, read_torchvision_svhn
from tests.fixtures import write_cifar10, write_cifar100, write_svhn


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _parse_cifar(folder: Path, files: list[str], labels_key: str) -> tuple[np.ndarray, list[int]]:
    """Independent parse of CIFAR pickles: ``(N, 3, 32, 32)`` uint8 and the labels."""
    data, labels = [], []
    for name in files:
        with open(folder / name, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        data.append(entry["data"])
        labels += list(entry[labels_key])
    return np.vstack(data).reshape(-1, 3, 32, 32), labels


@pytest.mark.parametrize("train", [True, False])
def test_repacked_cifar10_read_by_our_reader(tmp_path: Path, train: bool, caplog: pytest.LogCaptureFixture) -> None:
    write_cifar10(tmp_path, train_per_class=3)
    names = dataset_info("cifar10").class_names
    assert read_torchvision_cifar(tmp_path, False, train, names) is None  # md5 differs: torchvision refuses
    with caplog.at_level(logging.INFO, logger="lightning_dd.data.datasets.cifar10"):
        split = load_split("cifar10", tmp_path, train=train)
    assert "read by read_cifar" in caplog.text
    folder = tmp_path / "cifar-10-batches-py"
    files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    images, labels = _parse_cifar(folder, files, "labels")
    assert split.images.dtype == torch.uint8 and split.images.shape == (len(labels), 3, 32, 32)
    np.testing.assert_array_equal(split.images.numpy(), images)
    assert split.labels.tolist() == labels and split.class_names == names


def test_repacked_cifar100_read_by_our_reader(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    names = dataset_info("cifar100").class_names
    assert read_torchvision_cifar(tmp_path, True, False, names) is None
    split = load_split("cifar100", tmp_path, train=False)
    images, labels = _parse_cifar(tmp_path / "cifar-100-python", ["test"], "fine_labels")
    np.testing.assert_array_equal(split.images.numpy(), images)
    assert split.labels.tolist() == labels


def test_repacked_svhn_read_by_our_reader(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_svhn(tmp_path)
    names = dataset_info("svhn").class_names
    assert read_torchvision_svhn(tmp_path, True, names) is None
    with caplog.at_level(logging.INFO, logger="lightning_dd.data.datasets.svhn"):
        split = load_split("svhn", tmp_path, train=True)
    assert "read by read_svhn" in caplog.text
    mat = sio.loadmat(str(tmp_path / "train_32x32.mat"))
    x, y = mat["X"], mat["y"].reshape(-1).astype(np.int64)  # (H, W, C, N), 10 = digit 0
    np.testing.assert_array_equal(split.images.numpy(), x.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(split.labels.numpy(), np.where(y == 10, 0, y))


def _make_cifar10_official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    table = [[name, _md5(folder / name)] for name, _ in tvd.CIFAR10.train_list]
    monkeypatch.setattr(tvd.CIFAR10, "train_list", table)
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", _md5(folder / "test_batch")]])
    meta = {**tvd.CIFAR10.meta, "md5": _md5(folder / "batches.meta")}
    monkeypatch.setattr(tvd.CIFAR10, "meta", meta)


def test_official_cifar10_read_by_torchvision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write_cifar10(tmp_path)
    _make_cifar10_official(tmp_path, monkeypatch)
    names = dataset_info("cifar10").class_names
    for train in (True, False):
        official = read_torchvision_cifar(tmp_path, False, train, names)
        assert official is not None
        ours = read_cifar(tmp_path / "cifar-10-batches-py", False, train, names)
        assert torch.equal(official.images, ours.images) and torch.equal(official.labels, ours.labels)
        with caplog.at_level(logging.INFO, logger="lightning_dd.data.datasets.cifar10"):
            split = load_split("cifar10", tmp_path, train=train)
        assert "read by torchvision.datasets.CIFAR10" in caplog.text
        assert torch.equal(split.images, ours.images) and split.images.is_contiguous()
        caplog.clear()


def test_official_svhn_read_by_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_svhn(tmp_path)
    table = {k: [*v] for k, v in tvd.SVHN.split_list.items()}
    for split in ("train", "test"):
        table[split][2] = _md5(tmp_path / f"{split}_32x32.mat")
    monkeypatch.setattr(tvd.SVHN, "split_list", table)
    names = dataset_info("svhn").class_names
    for train in (True, False):
        official = read_torchvision_svhn(tmp_path, train, names)
        assert official is not None
        ours = read_svhn(tmp_path, train, names)
        assert torch.equal(official.images, ours.images) and torch.equal(official.labels, ours.labels)
        assert torch.equal(load_split("svhn", tmp_path, train=train).images, ours.images)


def test_official_files_with_other_class_names_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar10(tmp_path)
    _make_cifar10_official(tmp_path, monkeypatch)
    with pytest.raises(ValueError, match=r"batches\.meta: label names .* differ"):
        read_torchvision_cifar(tmp_path, False, True, [f"c{i}" for i in range(10)])
