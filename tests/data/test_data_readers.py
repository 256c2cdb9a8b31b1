"""Every on-disk format, read from tiny fixtures written in that format (tests/fixtures.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from PIL import Image

from lightning_dd.data import RealDataModule, dataset_info, decode, image_folder, load_split, registry
from lightning_dd.data.image_folder import read_image_folder
from tests.fixtures import (
    TINY_WNIDS,
    write_cifar10,
    write_cifar100,
    write_image_folder,
    write_mnist,
    write_svhn,
    write_tiny_imagenet,
)


def _assert_split(split, expected, class_names) -> None:  # type: ignore[no-untyped-def]
    assert split.images.dtype == torch.uint8 and split.labels.dtype == torch.int64
    np.testing.assert_array_equal(split.images.numpy(), expected.images)
    np.testing.assert_array_equal(split.labels.numpy(), expected.labels)
    assert split.class_names == tuple(class_names)


def _no_md5(monkeypatch: pytest.MonkeyPatch, module: object) -> None:
    """Let torchvision's own parser read fixture files: keep its existence check, drop the md5 comparison."""
    monkeypatch.setattr(module, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


@pytest.mark.parametrize("train", [True, False])
def test_cifar10_pickles(tmp_path: Path, train: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = write_cifar10(tmp_path)
    split = load_split("cifar10", tmp_path, train=train)
    _assert_split(split, expected["train" if train else "test"], dataset_info("cifar10").class_names)
    assert split.images.shape[1:] == (3, 32, 32)
    # torchvision's class refuses the fixture (md5 of the official files) ...
    with pytest.raises(RuntimeError, match="corrupted"):
        tvd.CIFAR10(str(tmp_path), train=train)
    # ... but its parser, md5 check aside, reads the very same pixels, labels and class names
    _no_md5(monkeypatch, tvd.cifar)
    ref = tvd.CIFAR10(str(tmp_path), train=train)
    np.testing.assert_array_equal(split.images.permute(0, 2, 3, 1).numpy(), ref.data)
    assert split.labels.tolist() == ref.targets and list(split.class_names) == ref.classes


def test_cifar100_pickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = write_cifar100(tmp_path)
    names = dataset_info("cifar100").class_names
    for train, key in ((True, "train"), (False, "test")):
        _assert_split(load_split("cifar100", tmp_path, train=train), expected[key], names)
    _no_md5(monkeypatch, tvd.cifar)
    ref = tvd.CIFAR100(str(tmp_path), train=False)
    assert ref.classes == list(names)
    np.testing.assert_array_equal(ref.data, expected["test"].images.transpose(0, 2, 3, 1))


def test_cifar_meta_must_match_registry(tmp_path: Path) -> None:
    write_cifar100(tmp_path, fine_names=[f"c{i}" for i in range(100)])
    with pytest.raises(ValueError, match="label names"):
        load_split("cifar100", tmp_path, train=True)


@pytest.mark.parametrize(("name", "fashion"), [("mnist", False), ("fashion_mnist", True)])
def test_mnist_idx_read_by_torchvision(tmp_path: Path, name: str, fashion: bool) -> None:
    expected = write_mnist(tmp_path, fashion=fashion)
    for train, key in ((True, "train"), (False, "test")):
        split = load_split(name, tmp_path, train=train)
        _assert_split(split, expected[key], dataset_info(name).class_names)
        assert split.images.shape[1:] == (1, 28, 28)
    # the fixture is what torchvision itself reads, md5 checks included
    cls = tvd.FashionMNIST if fashion else tvd.MNIST
    np.testing.assert_array_equal(cls(str(tmp_path), train=True).data.numpy(), expected["train"].images[:, 0])


def test_mnist_gz_only_is_decompressed(tmp_path: Path) -> None:
    expected = write_mnist(tmp_path, gzip_only=True)
    assert not (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
    _assert_split(load_split("mnist", tmp_path, train=True), expected["train"], dataset_info("mnist").class_names)
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


def test_svhn_mat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = write_svhn(tmp_path)
    assert (expected["train"].labels == 0).any()  # written as label 10
    for train, key in ((True, "train"), (False, "test")):
        _assert_split(load_split("svhn", tmp_path, train=train), expected[key], dataset_info("svhn").class_names)
    with pytest.raises(RuntimeError, match="corrupted"):
        tvd.SVHN(str(tmp_path), split="train")
    _no_md5(monkeypatch, tvd.svhn)
    ref = tvd.SVHN(str(tmp_path), split="train")
    np.testing.assert_array_equal(ref.data, expected["train"].images)
    np.testing.assert_array_equal(ref.labels, expected["train"].labels)


def test_tiny_imagenet_official_layout(tmp_path: Path) -> None:
    expected = write_tiny_imagenet(tmp_path)
    info = dataset_info("tiny_imagenet", tmp_path)
    assert info.class_names == tuple(sorted(TINY_WNIDS)) and info.num_classes == 3
    assert info.image_shape == (3, 64, 64)
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    for train, key in ((True, "train"), (False, "test")):
        split = load_split("tiny_imagenet", tmp_path, train=train)
        assert split.images.shape == (len(expected[key].labels), 3, 64, 64)
        np.testing.assert_array_equal(split.labels.numpy(), expected[key].labels)
        diff = np.abs(split.images.numpy().astype(np.int64) - expected[key].images)
        assert diff.max() <= 4  # JPEG, quality 95, smooth images
    # root may also be the tiny-imagenet-200 folder itself
    same = load_split("tiny_imagenet", tmp_path / "tiny-imagenet-200", train=False)
    assert same.labels.tolist() == expected["test"].labels.tolist()


def test_image_folder_dataset(tmp_path: Path) -> None:
    expected = write_image_folder(tmp_path, ["ant", "bee", "cat"], size=(6, 5), folder_order=["cat", "ant", "bee"])
    info = dataset_info("image_folder", tmp_path)
    assert info.class_names == ("ant", "bee", "cat") and info.image_shape == (3, 6, 5)
    x = expected["train"].images.astype(np.float64) / 255
    np.testing.assert_allclose(info.mean, x.mean(axis=(0, 2, 3)), atol=1e-9)
    np.testing.assert_allclose(info.std, x.std(axis=(0, 2, 3)), atol=1e-9)
    for train, key in ((True, "train"), (False, "test")):
        _assert_split(load_split("image_folder", tmp_path, train=train), expected[key], info.class_names)
    assert dataset_info("image_folder", tmp_path) == info  # cached


def test_image_folder_channels(tmp_path: Path) -> None:
    gray = tmp_path / "gray"
    expected = write_image_folder(gray, ["a", "b"], channels=1, ext=".bmp")
    info = dataset_info("image_folder", gray)
    assert info.channels == 1 and len(info.mean) == 1
    _assert_split(load_split("image_folder", gray, train=True), expected["train"], ("a", "b"))
    # one RGB file among grayscale ones: everything becomes RGB (gray replicated)
    mixed = tmp_path / "mixed"
    expected = write_image_folder(mixed, ["a", "b"], channels=1, ext=".png")
    rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(mixed / "train" / "b" / "0099.jpg", quality=100)
    split = load_split("image_folder", mixed, train=True)
    assert split.images.shape == (5, 3, 8, 8)
    np.testing.assert_array_equal(split.images[:4].numpy(), np.repeat(expected["train"].images, 3, axis=1))


def test_image_folder_size_mismatch_names_file(tmp_path: Path) -> None:
    write_image_folder(tmp_path, ["a", "b"], size=(8, 8))
    odd = tmp_path / "train" / "b" / "0007.png"
    Image.fromarray(np.zeros((9, 8, 3), dtype=np.uint8)).save(odd)
    with pytest.raises(ValueError, match=r"0007\.png.*9x8"):
        dataset_info("image_folder", tmp_path)


@pytest.mark.parametrize("under_name", [False, True])
def test_registered_dataset_from_image_folder(tmp_path: Path, under_name: bool) -> None:
    names = dataset_info("cifar10").class_names
    folder = tmp_path / "cifar10" if under_name else tmp_path
    expected = write_image_folder(folder, names, size=(32, 32), folder_order=list(reversed(names)), ext=".png")
    for train, key in ((True, "train"), (False, "test")):
        _assert_split(load_split("cifar10", tmp_path, train=train), expected[key], names)


def test_registry_order_not_sorted_order(tmp_path: Path) -> None:
    names = dataset_info("fashion_mnist").class_names
    assert list(names) != sorted(names)
    expected = write_image_folder(tmp_path, names, size=(28, 28), channels=1, folder_order=sorted(names))
    split = load_split("fashion_mnist", tmp_path, train=True)
    _assert_split(split, expected["train"], names)  # labels follow the registry, not the folder listing


def test_class_folder_mismatch(tmp_path: Path) -> None:
    names = list(dataset_info("cifar10").class_names)
    write_image_folder(tmp_path, [*names[:-1], "lorry"], size=(32, 32), train_per_class=1)
    with pytest.raises(ValueError, match=r"missing folders \['truck'\], unexpected folders \['lorry'\]"):
        load_split("cifar10", tmp_path, train=True)


def test_registered_size_enforced(tmp_path: Path) -> None:
    write_image_folder(tmp_path, dataset_info("cifar10").class_names, size=(16, 16), train_per_class=1)
    with pytest.raises(ValueError, match=r"16x16.*32x32"):
        load_split("cifar10", tmp_path, train=True)


def test_original_format_wins_over_image_folder(tmp_path: Path) -> None:
    expected = write_cifar10(tmp_path)
    write_image_folder(tmp_path, dataset_info("cifar10").class_names, size=(32, 32), train_per_class=1)
    np.testing.assert_array_equal(load_split("cifar10", tmp_path, train=True).images.numpy(), expected["train"].images)


def test_decoded_tensor_cache(tmp_path: Path, _isolated_tensor_cache: Path) -> None:
    data = tmp_path / "data"
    expected = write_image_folder(data, ["a", "b"], size=(4, 4))
    first = read_image_folder(data / "train")
    cached = sorted(_isolated_tensor_cache.glob("*.pt"))
    assert len(cached) == 1
    # a hit returns the same tensors; a corrupt cache file is ignored and rewritten
    assert torch.equal(read_image_folder(data / "train").images, first.images)
    cached[0].write_bytes(b"not a torch file")
    again = read_image_folder(data / "train")
    np.testing.assert_array_equal(again.images.numpy(), expected["train"].images)
    assert cached[0].stat().st_size > 100
    assert not list(_isolated_tensor_cache.glob("*.tmp"))
    # changing the files changes the key: the new content is read, not the stale cache
    new = np.full((4, 4, 3), 7, dtype=np.uint8)
    Image.fromarray(new).save(data / "train" / "a" / "0000.png")
    os.utime(data / "train" / "a" / "0000.png", ns=(2_000_000_000 * 10**9, 2_000_000_000 * 10**9))
    changed = read_image_folder(data / "train")
    assert int(changed.images[0].max()) == 7 and len(list(_isolated_tensor_cache.glob("*.pt"))) == 2


def test_image_folder_statistics_cached_on_disk(tmp_path: Path, _isolated_tensor_cache: Path) -> None:
    write_image_folder(tmp_path, ["a", "b"], size=(4, 4))
    info = dataset_info("image_folder", tmp_path)
    assert len(list(_isolated_tensor_cache.glob("*.info.json"))) == 1
    image_folder._IMAGE_FOLDER_INFO.clear()  # a new process: only the on-disk cache is left
    for cached in _isolated_tensor_cache.glob("*.pt"):
        cached.unlink()
    assert dataset_info("image_folder", tmp_path) == info
    assert not list(_isolated_tensor_cache.glob("*.pt"))  # statistics came from the sidecar, nothing decoded


def test_pil_fallback_matches_torchvision_decoders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_folder(tmp_path / "png", ["a", "b"], size=(9, 7))
    write_image_folder(tmp_path / "jpg", ["a", "b"], size=(9, 7), ext=".jpg")
    paths = [*sorted((tmp_path / "png").rglob("*.png")), *sorted((tmp_path / "jpg").rglob("*.jpg"))]
    fast = decode.decode_images(paths, 3)
    monkeypatch.setattr(decode, "_torchvision_decoders", lambda: None)  # as if torchvision dropped image decoding
    slow = decode.decode_images(paths, 3)
    assert fast.shape == slow.shape == (len(paths), 3, 9, 7)
    assert torch.equal(fast[:6], slow[:6])  # PNG: identical
    assert (fast[6:].int() - slow[6:].int()).abs().max() <= 2  # JPEG: libjpeg IDCT/upsampling may differ by a bit
    gray = decode.decode_images(paths[:2], 1)
    assert gray.shape == (2, 1, 9, 7)


def test_download_is_a_no_op_when_files_exist(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    registry.download("cifar10", tmp_path)  # no network access needed: the files are there
    RealDataModule("cifar10", root=str(tmp_path), download=True).prepare_data()
    registry.download("digits", tmp_path)
