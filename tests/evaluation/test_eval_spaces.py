"""Evaluation honours the artifact's image space: ``DistilledDataModule`` on the embedded digits dataset, the
plain-PyTorch student and the Trainer-based ``evaluate_artifact`` score a ``pixels`` set exactly like its normalised
equivalent, and a ``zca`` set is tested on a whitened test split."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from lightning_dd.artifact import DistilledSet
from lightning_dd.augment.zca import ZCA
from lightning_dd.data import DistilledDataModule
from lightning_dd.data.registry import dataset_info, load_split, normalize
from lightning_dd.data.spaces import encode, evaluation_space, for_evaluation
from lightning_dd.evaluation import StudentRecipe, train_student
from lightning_dd.evaluation.run import evaluate_artifact


def digits_set(space: str, ipc: int = 5) -> tuple[DistilledSet, torch.Tensor, ZCA | None]:
    """The first ``ipc`` digits train images per class stored in ``space``; also their uint8 images and the ZCA
    (fitted on the whole train split, as MTT fits it)."""
    split, info = load_split("digits", None, train=True), dataset_info("digits")
    index = torch.cat([torch.nonzero(split.labels == c).flatten()[:ipc] for c in range(info.num_classes)])
    raw = split.images[index]
    zca = ZCA.fit(split.images) if space == "zca" else None
    if space == "normalized":
        images = normalize(raw, info.mean, info.std)
    elif space == "pixels":
        images = raw.float() / 255
    else:
        assert zca is not None
        images = zca.transform(raw)
    distilled = DistilledSet(images=images, labels=split.labels[index], dataset="digits", class_names=info.class_names,
                             mean=info.mean, std=info.std, method="random", ipc=ipc, seed=0, space=space,
                             zca=None if zca is None else zca.state_dict(), dsa_strategy=info.dsa_strategy)
    return distilled, raw, zca


@pytest.fixture(scope="module")
def test_u8() -> torch.Tensor:
    return load_split("digits", None, train=False).images


def batches(data: DistilledDataModule) -> list[torch.Tensor]:
    """Every training tensor the DataModule hands the student, concatenated over one epoch (fixed shuffle)."""
    parts = list(zip(*data.train_dataloader(), strict=True))
    return [torch.cat(p) for p in parts]


def test_pixels_set_trains_and_tests_on_the_normalised_inputs(test_u8: torch.Tensor) -> None:
    pixels, _, _ = digits_set("pixels")
    normalized, _, _ = digits_set("normalized")
    a, b = DistilledDataModule(pixels, batch_size=16, seed=3), DistilledDataModule(normalized, batch_size=16, seed=3)
    assert a.evaluation_space == b.evaluation_space == "normalized"
    for x, y in zip(batches(a), batches(b), strict=True):
        assert torch.equal(x, y)
    test_a, labels_a = a.test_tensors()
    test_b, labels_b = b.test_tensors()
    assert torch.equal(test_a, test_b) and torch.equal(labels_a, labels_b)
    info = dataset_info("digits")
    assert torch.equal(test_a, normalize(test_u8, info.mean, info.std))
    assert torch.equal(a.train_images(), normalize(pixels.images, info.mean, info.std))
    assert torch.equal(pixels.images, digits_set("pixels")[0].images), "the artifact itself is left in pixels"


def test_zca_set_keeps_its_images_and_whitens_the_test_split(test_u8: torch.Tensor, tmp_path: Path) -> None:
    whitened, raw, zca = digits_set("zca")
    assert zca is not None
    path = whitened.save(tmp_path / "zca.pt")  # the ZCA state travels in the file (weights_only load)
    data = DistilledDataModule(str(path), batch_size=1000)
    assert data.space == data.evaluation_space == "zca"
    assert data.zca is not None and data.zca.image_shape == (1, 8, 8)
    images = batches(data)[0]
    assert torch.equal(data.train_images(), whitened.images)
    # the loader hands out the stored (whitened) images themselves, in shuffled order
    assert images.shape == whitened.images.shape
    gaps = (images.flatten(1)[:, None] - whitened.images.flatten(1)[None]).abs().amax(dim=2)  # (n, n) max |diff|
    assert float(gaps.min(dim=1).values.max()) == 0.0
    test, _ = data.test_tensors()
    # independent: the whitening written out from the ZCA's eigendecomposition, in float64
    u, s = zca.eigenvectors.double(), zca.eigenvalues.double()
    t = u @ torch.diag((s + 0.1).rsqrt()) @ u.T
    x = test_u8.double().reshape(len(test_u8), -1) / 255
    expected = ((x - zca.mean.double().reshape(1, -1)) @ t).reshape(test_u8.shape)
    torch.testing.assert_close(test.double(), expected, atol=1e-5, rtol=0)
    assert torch.equal(test, zca.transform(test_u8))
    torch.testing.assert_close(zca.inverse(whitened.images), raw.float() / 255, atol=1e-5, rtol=0)


def test_refused_at_construction() -> None:
    whitened, _, _ = digits_set("zca")
    bad = dataclasses.replace(whitened)
    bad.space = "lab"
    with pytest.raises(ValueError, match="image space 'lab', which no evaluator handles"):
        DistilledDataModule(bad)
    bad = dataclasses.replace(whitened)
    bad.zca = None
    with pytest.raises(ValueError, match="'zca' needs the ZCA state"):
        DistilledDataModule(bad)
    bad = dataclasses.replace(whitened)
    bad.space = "normalized"
    with pytest.raises(ValueError, match="carries ZCA state"):
        DistilledDataModule(bad)
    bad = dataclasses.replace(whitened)
    bad.zca = {**(whitened.zca or {}), "eps": torch.tensor(-1.0)}
    with pytest.raises(ValueError, match="eps must be a finite number > 0, got -1"):
        DistilledDataModule(bad)


def test_test_split_of_another_shape_is_refused() -> None:
    normalized, _, _ = digits_set("normalized")
    images = torch.zeros(len(normalized.labels), 1, 4, 4)
    small = dataclasses.replace(normalized, images=images)
    with pytest.raises(ValueError, match=r"does not match the digits data: image shape \(1, 4, 4\) vs \(1, 8, 8\)"):
        DistilledDataModule(small).setup("test")


def test_plain_student_scores_pixels_set_like_normalised_set(test_u8: torch.Tensor) -> None:
    pixels, _, _ = digits_set("pixels")
    normalized, _, _ = digits_set("normalized")
    recipe = StudentRecipe(epochs=15, batch_size=25, lr=0.05, dsa_strategy=normalized.dsa_strategy)  # DSA on
    space = evaluation_space(pixels.space)
    test_p = encode(test_u8, space, pixels.mean, pixels.std)
    test_n = encode(test_u8, evaluation_space(normalized.space), normalized.mean, normalized.std)
    labels = load_split("digits", None, train=False).labels
    acc_p = train_student(for_evaluation(pixels), test_p, labels, "convnet_w32", recipe, seed_keys=(7,))
    acc_n = train_student(normalized, test_n, labels, "convnet_w32", recipe, seed_keys=(7,))
    assert acc_p == acc_n
    assert acc_n > 0.15  # it learned something (chance 0.1; measured 0.24 on 359 test images)


def test_evaluate_artifact_scores_pixels_set_like_normalised_set(tmp_path: Path) -> None:
    pixels, _, _ = digits_set("pixels")
    normalized, _, _ = digits_set("normalized")
    kwargs = {"models": ("convnet_w32",), "runs": 1, "epochs": 4, "batch_size": 25,
              "trainer_kwargs": {"accelerator": "cpu", "default_root_dir": str(tmp_path)}}
    a = evaluate_artifact(pixels, **kwargs)  # type: ignore[arg-type]
    b = evaluate_artifact(normalized, **kwargs)  # type: ignore[arg-type]
    assert a["results"] == b["results"]
    assert len(a["results"]["convnet_w32"]["accs"]) == 1
