"""The real CIFAR-10 copy from ../shared/data, if it has been unpacked (skipped otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lightning_dd.data import RealDataModule, dataset_info, load_split

DEST = Path.home() / ".cache" / "lightning_dd" / "data"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

pytestmark = pytest.mark.skipif(
    not (DEST / "cifar10" / ".complete").is_file(),
    reason=f"CIFAR-10 copy not unpacked at {DEST / 'cifar10'} (run {SHARED / 'unpack.sh'} to enable this test)",
)

# Published CIFAR-10 test-split statistics (the PNG test copy is lossless).
TEST_MEAN = (0.4942, 0.4851, 0.4504)


def _channel_mean(images: torch.Tensor) -> list[float]:
    return (images.double().mean(dim=(0, 2, 3)) / 255).tolist()


def test_real_cifar10_image_folder_copy() -> None:
    info = dataset_info("cifar10")
    train = load_split("cifar10", DEST, train=True)
    test = load_split("cifar10", DEST, train=False)
    assert train.images.shape == (50_000, 3, 32, 32) and test.images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.class_names == test.class_names == info.class_names
    test_mean = _channel_mean(test.images)
    assert test_mean == pytest.approx(TEST_MEAN, abs=5e-4)
    assert test_mean == pytest.approx(info.mean, abs=0.005)  # test vs train statistics: close, not equal
    # train copy is JPEG-compressed; its mean still matches the published train mean closely (data README)
    assert _channel_mean(train.images) == pytest.approx(info.mean, abs=5e-4)
    # a DataModule over the same files (now read from the decoded-tensor cache)
    dm = RealDataModule("cifar10", root=str(DEST), batch_real=4, iterations_per_epoch=1)
    dm.setup()
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (40, 3, 32, 32) and labels.tolist() == [c for c in range(10) for _ in range(4)]
    assert torch.equal(dm.test_split().labels, test.labels)
