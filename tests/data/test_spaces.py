"""The image-space contract: encode / to_pixels per space, evaluation spaces, the artifact checks, and that a
``pixels`` set is evaluated on exactly the inputs of its normalised equivalent."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lightning_dd.artifact import DistilledSet
from lightning_dd.augment.zca import ZCA
from lightning_dd.data.registry import dataset_info, load_split
from lightning_dd.data.spaces import (
    EVALUATION_SPACES,
    IMAGE_SPACES,
    as_zca,
    check_artifact_space,
    check_space,
    encode,
    evaluation_space,
    evaluation_tensors,
    for_evaluation,
    to_evaluation_space,
    to_pixels,
)

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


@pytest.fixture(scope="module")
def u8() -> torch.Tensor:
    """uint8 (40, 3, 4, 5) random images."""
    return torch.randint(0, 256, (40, 3, 4, 5), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


@pytest.fixture(scope="module")
def zca(u8: torch.Tensor) -> ZCA:
    return ZCA.fit(u8)


def digits_set(space: str, ipc: int = 3) -> tuple[DistilledSet, torch.Tensor]:
    """The first ``ipc`` digits train images of each class as a set in ``space``, and its uint8 images."""
    split, info = load_split("digits", None, train=True), dataset_info("digits")
    index = torch.cat([torch.nonzero(split.labels == c).flatten()[:ipc] for c in range(info.num_classes)])
    raw = split.images[index]
    zca = ZCA.fit(split.images) if space == "zca" else None
    images = encode(raw, space, info.mean, info.std, zca)
    distilled = DistilledSet(images=images, labels=split.labels[index], dataset="digits", class_names=info.class_names,
                             mean=info.mean, std=info.std, method="random", ipc=ipc, seed=0, space=space,
                             zca=None if zca is None else zca.state_dict(), dsa_strategy=info.dsa_strategy)
    return distilled, raw


def test_spaces_are_the_synthetic_sets_spaces() -> None:
    assert IMAGE_SPACES == ("normalized", "pixels", "zca")
    assert set(EVALUATION_SPACES) == set(IMAGE_SPACES)
    assert [evaluation_space(s) for s in IMAGE_SPACES] == ["normalized", "normalized", "zca"]


def test_encode_against_independent_formulas(u8: torch.Tensor, zca: ZCA) -> None:
    x = u8.double() / 255
    m = torch.tensor(MEAN, dtype=torch.float64).reshape(3, 1, 1)
    s = torch.tensor(STD, dtype=torch.float64).reshape(3, 1, 1)
    normalized = encode(u8, "normalized", MEAN, STD)
    assert normalized.dtype == torch.float32
    torch.testing.assert_close(normalized.double(), (x - m) / s, atol=1e-6, rtol=0)
    pixels = encode(u8, "pixels", MEAN, STD)
    assert pixels.dtype == torch.float32 and torch.equal(pixels, u8.float() / 255)
    whitened = encode(u8, "zca", MEAN, STD, zca)
    _, t, _ = zca.matrices("cpu", torch.float64)
    mu = zca.mean.double().reshape(1, -1)
    torch.testing.assert_close(whitened.double(), ((x.reshape(40, -1) - mu) @ t).reshape(u8.shape), atol=1e-5, rtol=0)
    # float [0, 1] input == uint8 input; a ZCA state dict works like the ZCA
    assert torch.equal(encode(u8.float() / 255, "normalized", MEAN, STD), normalized)
    assert torch.equal(encode(u8, "zca", MEAN, STD, zca.state_dict()), whitened)


@pytest.mark.parametrize("space", IMAGE_SPACES)
def test_to_pixels_inverts_encode(space: str, u8: torch.Tensor, zca: ZCA) -> None:
    z = zca if space == "zca" else None
    p = u8.float() / 255
    back = to_pixels(encode(u8, space, MEAN, STD, z), space, MEAN, STD, z)
    assert back.dtype == torch.float32
    torch.testing.assert_close(back, p, atol=2e-6 if space == "zca" else 1e-6, rtol=0)
    y = torch.randn(6, 3, 4, 5, generator=torch.Generator().manual_seed(3))  # and encode inverts to_pixels
    torch.testing.assert_close(encode(to_pixels(y, space, MEAN, STD, z), space, MEAN, STD, z), y, atol=1e-5, rtol=0)


def test_to_evaluation_space(u8: torch.Tensor, zca: ZCA) -> None:
    p = u8.float() / 255
    # pixels -> normalized with the very operation that encodes real images: bit-identical
    assert torch.equal(to_evaluation_space(p, "pixels", MEAN, STD), encode(u8, "normalized", MEAN, STD))
    n = encode(u8, "normalized", MEAN, STD)
    assert torch.equal(to_evaluation_space(n, "normalized", MEAN, STD), n)
    w = encode(u8, "zca", MEAN, STD, zca)
    assert torch.equal(to_evaluation_space(w, "zca", MEAN, STD, zca), w)
    assert to_evaluation_space(n.double(), "normalized", MEAN, STD).dtype == torch.float32
    outside = torch.full((1, 3, 4, 5), 1.5)  # not clamped
    torch.testing.assert_close(to_evaluation_space(outside, "pixels", MEAN, STD)[0, :, 0, 0],
                               (1.5 - torch.tensor(MEAN)) / torch.tensor(STD))


def test_check_space_errors(zca: ZCA) -> None:
    assert check_space("pixels") == "pixels"
    assert check_space("zca", zca, (3, 4, 5)) == "zca"
    with pytest.raises(ValueError, match=r"unknown image space 'lab'; expected one of \('normalized', 'pixels'"):
        check_space("lab")
    with pytest.raises(ValueError, match="unknown image space 'lab'"):
        evaluation_space("lab")
    with pytest.raises(ValueError, match="'zca' needs the ZCA state"):
        check_space("zca")
    with pytest.raises(ValueError, match="'zca' needs the ZCA state"):
        encode(torch.zeros(1, 3, 4, 5), "zca", MEAN, STD)
    with pytest.raises(ValueError, match=r"applies to images \(3, 4, 5\), not to images \(3, 5, 4\)"):
        check_space("zca", zca, (3, 5, 4))
    with pytest.raises(TypeError, match="ZCA or its state dict"):
        check_space("zca", "zca.pt")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ZCA, its state dict or None"):
        as_zca(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2 values for 3-channel"):
        to_pixels(torch.zeros(1, 3, 4, 5), "normalized", (0.5, 0.5), STD)
    with pytest.raises(TypeError, match="uint8 or floating point"):
        encode(torch.zeros(1, 3, 4, 5, dtype=torch.int64), "pixels", MEAN, STD)


def mutated(distilled: DistilledSet, **changes: object) -> DistilledSet:
    """A copy with fields overwritten after construction (``DistilledSet`` validates some of them itself)."""
    copy = dataclasses.replace(distilled)
    for key, value in changes.items():
        setattr(copy, key, value)
    return copy


def test_artifact_checks() -> None:
    pixels, _ = digits_set("pixels")
    assert check_artifact_space(pixels) == "pixels"
    with pytest.raises(ValueError, match="image space 'lab', which no evaluator handles"):
        check_artifact_space(mutated(pixels, space="lab"))
    with pytest.raises(ValueError, match="cannot be evaluated: image space 'zca' needs the ZCA state"):
        check_artifact_space(mutated(pixels, space="zca"))
    whitened, _ = digits_set("zca")
    assert check_artifact_space(whitened) == "zca"
    assert whitened.zca is not None
    with pytest.raises(ValueError, match="is in space 'normalized' but carries ZCA state"):
        check_artifact_space(mutated(whitened, space="normalized"))
    broken = {k: v for k, v in whitened.zca.items() if k != "eigenvalues"}
    with pytest.raises(ValueError, match=r"cannot be evaluated: ZCA state must have exactly the keys .* missing"):
        check_artifact_space(mutated(whitened, zca=broken))
    other = ZCA.fit(torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8)).state_dict()
    with pytest.raises(ValueError, match=r"applies to images \(1, 4, 4\), not to images \(1, 8, 8\)"):
        check_artifact_space(mutated(whitened, zca=other))


def test_pixel_set_gives_the_normalised_sets_student_inputs() -> None:
    pixels, raw = digits_set("pixels")
    normalized, raw_n = digits_set("normalized")
    assert torch.equal(raw, raw_n) and torch.equal(pixels.images, raw.float() / 255)
    test = load_split("digits", None, train=False).images
    train_p, test_p = evaluation_tensors(pixels, test)
    train_n, test_n = evaluation_tensors(normalized, test)
    assert torch.equal(train_p, train_n) and torch.equal(test_p, test_n)
    converted = for_evaluation(pixels)
    assert converted.space == "normalized" and torch.equal(converted.images, normalized.images)
    assert for_evaluation(normalized) is normalized


def test_zca_set_gets_its_test_split_whitened() -> None:
    whitened, raw = digits_set("zca")
    test = load_split("digits", None, train=False).images
    train, test_w = evaluation_tensors(whitened, test)
    zca = ZCA.from_state(whitened.zca or {})
    assert torch.equal(train, whitened.images)
    torch.testing.assert_close(train, zca.transform(raw.float() / 255), atol=0, rtol=0)
    assert torch.equal(test_w, zca.transform(test.float() / 255))
    assert for_evaluation(whitened) is whitened
    with pytest.raises(ValueError, match=r"test images \(1, 4, 4\) do not match the distilled set's images"):
        evaluation_tensors(whitened, torch.zeros(2, 1, 4, 4, dtype=torch.uint8))
