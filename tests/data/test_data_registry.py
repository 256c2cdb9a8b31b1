"""Registry: names, reference statistics, the embedded digits split, error messages, normalize."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from lightning_dd.data import DATASET_NAMES, DatasetInfo, LabeledImages, dataset_info, load_split, normalize

REFERENCE = {
    "mnist": ((1, 28, 28), (0.1307,), (0.3081,)),
    "fashion_mnist": ((1, 28, 28), (0.2861,), (0.3530,)),
    "svhn": ((3, 32, 32), (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "cifar10": ((3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((3, 32, 32), (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def test_dataset_names() -> None:
    assert DATASET_NAMES == (
        "digits",
        "mnist",
        "fashion_mnist",
        "svhn",
        "cifar10",
        "cifar100",
        "tiny_imagenet",
        "image_folder",
    )


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_statistics(name: str) -> None:
    info = dataset_info(name)
    shape, mean, std = REFERENCE[name]
    assert info.name == name
    assert info.image_shape == shape
    assert info.mean == mean and info.std == std
    assert info.num_classes == len(info.class_names) == (100 if name == "cifar100" else 10)
    digit = name in ("mnist", "svhn", "digits")
    expected_dsa = "color_crop_cutout_scale_rotate" if digit else "color_crop_cutout_flip_scale_rotate"
    assert info.dsa_strategy == expected_dsa


def test_class_names() -> None:
    assert dataset_info("cifar10").class_names == (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip
    fine = dataset_info("cifar100").class_names
    # torchvision's CIFAR100.classes is the meta file's fine_label_names: the 100 names in alphabetical order
    assert len(set(fine)) == 100 and list(fine) == sorted(fine)
    assert fine[:3] == ("apple", "aquarium_fish", "baby") and fine[-1] == "worm"
    for name in ("digits", "mnist", "svhn"):
        assert dataset_info(name).class_names == tuple(str(d) for d in range(10))
    assert dataset_info("fashion_mnist").class_names[0] == "tshirt_top"
    assert dataset_info("fashion_mnist").class_names[-1] == "ankle_boot"
    assert dataset_info("digits").dsa_strategy == "color_crop_cutout_scale_rotate"


def test_unknown_dataset_names_value_and_allowed() -> None:
    with pytest.raises(ValueError, match=r"'imagenet'.*digits, mnist, fashion_mnist.*image_folder"):
        dataset_info("imagenet")
    with pytest.raises(ValueError, match="'imagenet'"):
        load_split("imagenet", None, train=True)


def test_root_required() -> None:
    with pytest.raises(ValueError, match=r"'cifar10'.*root.*required"):
        load_split("cifar10", None, train=True)
    with pytest.raises(ValueError, match="root"):
        dataset_info("tiny_imagenet")
    with pytest.raises(ValueError, match="root"):
        dataset_info("image_folder")


def test_missing_files_message(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_split("cifar10", tmp_path, train=True)
    msg = str(err.value)
    assert "'cifar10'" in msg and str(tmp_path) in msg
    assert f"{tmp_path}/cifar-10-batches-py" in msg  # original format
    assert f"{tmp_path}/train/<class>" in msg  # image folder under root
    assert f"{tmp_path}/cifar10/train/<class>" in msg  # image folder under root/<name>
    assert "download=True" in msg and "--data.download true" in msg
    with pytest.raises(FileNotFoundError, match="tiny-imagenet-200"):
        load_split("tiny_imagenet", tmp_path, train=False)
    with pytest.raises(FileNotFoundError, match=r"'image_folder'.*root/train/<class>"):
        load_split("image_folder", tmp_path, train=True)


def test_digits_split_and_statistics() -> None:
    train = load_split("digits", None, train=True)
    test = load_split("digits", "/ignored", train=False)
    assert isinstance(train, LabeledImages)
    assert len(train) == 1438 and len(test) == 359
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 8, 8)
    assert train.labels.dtype == torch.int64
    bunch = load_digits()
    expected = np.rint(bunch.images * 255 / 16).astype(np.uint8)
    idx = np.arange(len(expected))
    np.testing.assert_array_equal(test.images[:, 0].numpy(), expected[idx % 5 == 4])
    np.testing.assert_array_equal(train.labels.numpy(), bunch.target[idx % 5 != 4])
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    x = train.images.double() / 255
    info = dataset_info("digits")
    assert info.image_shape == (1, 8, 8) and info.num_classes == 10
    assert abs(x.mean().item() - info.mean[0]) < 1e-4
    assert abs(x.std(unbiased=False).item() - info.std[0]) < 1e-4


def test_normalize_math() -> None:
    images = torch.tensor([[[[0, 255]], [[51, 102]]]], dtype=torch.uint8)  # (1, 2, 1, 2)
    out = normalize(images, (0.5, 0.2), (0.5, 0.1))
    assert out.dtype == torch.float32 and out.shape == images.shape
    expected = torch.tensor([[[[-1.0, 1.0]], [[0.0, 2.0]]]])
    torch.testing.assert_close(out, expected)
    # float input in [0, 1] is not divided again; (C, H, W) works too
    torch.testing.assert_close(normalize(images[0].double() / 255, (0.5, 0.2), (0.5, 0.1)), expected[0])
    torch.testing.assert_close(normalize(images, torch.tensor([0.5, 0.2]), torch.tensor([0.5, 0.1])), expected)
    with pytest.raises(ValueError, match="2-channel"):
        normalize(images, (0.5,), (0.5,))


def test_dataset_info_validates() -> None:
    with pytest.raises(ValueError, match="mean/std"):
        DatasetInfo("x", 3, (8, 8), 1, (0.5,), (0.5,), ("a",), "color")
    info = DatasetInfo("x", 1, (4, 6), 2, (0.5,), (0.5,), ("a", "b"), "color")
    assert info.image_shape == (1, 4, 6)
    with pytest.raises(AttributeError):
        info.channels = 3  # type: ignore[misc]
