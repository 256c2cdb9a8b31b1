"""``SyntheticSet.decode()``: identity for plain sets; IDC multi-formation and IDM partition grids, against naive
crop-and-upsample loops; decoded images are what the artifact exports."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from lightning_dd.artifact import DistilledSet
from lightning_dd.methods import MatchingModule, Views
from lightning_dd.synthetic import FactorizedSyntheticSet, SyntheticSet, decode_grid, encode_partition
from tests.helpers import digits_data, quiet_trainer


def naive(images: Tensor, factor: int, order: list[tuple[int, int]]) -> Tensor:
    """Crop by crop, image by image (crop-major), 0.5-padded to a multiple of ``factor``, bilinear upsampled."""
    n, _, h, w = images.shape
    side_h, side_w = math.ceil(h / factor), math.ceil(w / factor)
    padded = F.pad(images, (0, side_w * factor - w, 0, side_h * factor - h), value=0.5)
    out = []
    for i, j in order:
        for k in range(n):
            crop = padded[k : k + 1, :, i * side_h : (i + 1) * side_h, j * side_w : (j + 1) * side_w]
            out.append(F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False))
    return torch.cat(out)


@pytest.mark.parametrize(("factor", "size"), [(2, 8), (3, 9), (3, 8), (2, 7)])
def test_multi_formation_equals_the_naive_loop(factor: int, size: int) -> None:
    images = torch.rand(3, 2, size, size, generator=torch.Generator().manual_seed(0))
    decoded, source = decode_grid(images, factor, "multi_formation")
    order = [(i, j) for i in range(factor) for j in range(factor)]  # row by row
    torch.testing.assert_close(decoded, naive(images, factor, order), rtol=0, atol=1e-6)
    assert source.tolist() == [k for _ in order for k in range(3)]


def test_partition_takes_quadrants_column_by_column() -> None:
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    decoded, source = decode_grid(images, 2, "partition")
    expected = naive(images, 2, [(0, 0), (1, 0), (0, 1), (1, 1)])  # TL, BL, TR, BR (uitrbn/IDM)
    torch.testing.assert_close(decoded, expected, rtol=0, atol=1e-6)
    assert source.tolist() == [0, 1] * 4
    with pytest.raises(ValueError, match="partition"):
        decode_grid(torch.zeros(1, 1, 7, 7), 2, "partition")
    with pytest.raises(ValueError, match="factor"):
        decode_grid(images, 0)
    with pytest.raises(ValueError, match="layout"):
        decode_grid(images, 2, "mosaic")  # type: ignore[arg-type]


def test_decode_of_a_factorised_set_has_labels_and_gradients() -> None:
    plain = SyntheticSet(3, 2, (1, 4, 4))
    assert plain.decode()[0] is plain.images and plain.factor == 1
    fac = FactorizedSyntheticSet(3, 2, (1, 4, 4), factor=2)
    with torch.no_grad():
        fac.images.copy_(torch.rand(6, 1, 4, 4))
    images, labels = fac.decode()
    assert images.shape == (24, 1, 4, 4) and fac.factor == 2
    assert labels.tolist() == [0, 0, 1, 1, 2, 2] * 4  # every crop keeps its stored image's class
    images.sum().backward()
    assert fac.images.grad is not None and (fac.images.grad != 0).all()
    class_images, class_labels = fac.decode_class(1)
    torch.testing.assert_close(class_images, images[labels == 1])
    assert class_labels.tolist() == [1] * 8


class FactorizedMean(MatchingModule):
    """A test method on a factorised set: the decoded images are pulled to the real class means."""

    method_name = "factorized_mean"

    def configure_synthetic(self) -> SyntheticSet:
        return FactorizedSyntheticSet(self.hparams["num_classes"], self.hparams["ipc"],
                                      tuple(self.hparams["image_shape"]), factor=2, layout="partition")

    def match(self, real: Tensor) -> tuple[Tensor, Views]:
        images, labels = self.synthetic.decode()
        return ((images - real.mean(dim=1)[labels]) ** 2).mean(), Views(synthetic=images, labels=labels)


def test_the_artifact_holds_the_decoded_training_images(tmp_path: Path) -> None:
    path = tmp_path / "set.pt"
    model = FactorizedMean(ipc=1, num_classes=10, image_shape=(1, 8, 8), artifact_path=str(path),
                           optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    quiet_trainer(tmp_path, max_steps=2).fit(model, digits_data())
    distilled = DistilledSet.load(path)
    assert distilled.images.shape == (40, 1, 8, 8) and distilled.factor == 2 and distilled.ipc == 1
    assert distilled.labels.tolist() == list(range(10)) * 4
    torch.testing.assert_close(distilled.images, model.synthetic.decode()[0].detach())


def test_encode_partition_places_each_draw_in_its_quadrant_and_round_trips() -> None:
    """IDM's init: draw q goes to quadrant q (TL, BL, TR, BR); decode returns draw q's images in crop q (constant
    images exactly; any image as the explicit 2x bilinear down-up sampling of the reference)."""
    g = torch.Generator().manual_seed(0)
    n = 3
    values = torch.arange(4 * n, dtype=torch.float32).view(4, n, 1, 1, 1)
    const = values.expand(4, n, 3, 8, 8).clone()
    stored = encode_partition(const)
    assert stored.shape == (n, 3, 8, 8)
    assert torch.equal(stored[:, :, :4, :4], const[0, :, :, :4, :4])  # TL = draw 0
    assert torch.equal(stored[:, :, 4:, :4], const[1, :, :, :4, :4])  # BL = draw 1
    assert torch.equal(stored[:, :, :4, 4:], const[2, :, :, :4, :4])  # TR = draw 2
    decoded, source = decode_grid(stored, 2, "partition")
    torch.testing.assert_close(decoded, const.flatten(0, 1))
    assert source.tolist() == list(range(n)) * 4

    draws = torch.rand(4, n, 3, 8, 8, generator=g)
    decoded, _ = decode_grid(encode_partition(draws), 2, "partition")
    expected = torch.stack([F.interpolate(F.interpolate(d, scale_factor=0.5, mode="bilinear"), scale_factor=2,
                                          mode="bilinear") for d in draws]).flatten(0, 1)
    torch.testing.assert_close(decoded, expected)
    # the 2x2 downscale is a block average (bilinear at half-pixel centres)
    torch.testing.assert_close(encode_partition(draws)[:, :, :4, :4], F.avg_pool2d(draws[0], 2))


def test_encode_partition_refuses_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(4, N, C, H, W\).*even"):
        encode_partition(torch.zeros(3, 2, 3, 8, 8))
    with pytest.raises(ValueError, match="even"):
        encode_partition(torch.zeros(4, 2, 3, 7, 8))
