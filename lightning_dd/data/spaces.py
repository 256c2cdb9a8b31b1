"""The image-space contract: what the values of an image tensor mean, and how to move between spaces.

Spaces (``lightning_dd.synthetic.IMAGE_SPACES``), all derived from pixels ``p = x / 255`` in [0, 1]:

* ``"normalized"``: ``(p - mean) / std`` per channel (DM, DC, DSA, IDM; ``VICO-UoE/DatasetCondensation: utils.py``).
* ``"pixels"``: ``p`` itself (IDC keeps raw [0, 1] synthetic pixels, ``snu-mllab/Efficient-Dataset-Condensation``).
* ``"zca"``: ZCA whitening of ``p`` fitted on the train split (MTT, ``GeorgeCazenavette/mtt-distillation: utils.py``).

Students are trained in the *evaluation space* of a set (:func:`evaluation_space`): IDC's evaluation normalises its
raw-pixel synthetic data, so ``pixels -> normalized``; MTT trains and tests students on ZCA images, so
``zca -> zca``; ``normalized -> normalized``. The real test split goes through the same transform
(:func:`evaluation_tensors`), so a ``pixels`` set scores exactly like the equivalent ``normalized`` set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TypeAlias, cast

import torch
from torch import Tensor

from lightning_dd.artifact import DistilledSet
from lightning_dd.augment.zca import ZCA
from lightning_dd.data.registry import normalize
from lightning_dd.synthetic import IMAGE_SPACES, ImageSpace

__all__ = [
    "EVALUATION_SPACES",
    "IMAGE_SPACES",
    "as_zca",
    "check_artifact_space",
    "check_space",
    "encode",
    "evaluation_space",
    "evaluation_tensors",
    "for_evaluation",
    "to_evaluation_space",
    "to_pixels",
]

EVALUATION_SPACES: dict[str, ImageSpace] = {"normalized": "normalized", "pixels": "normalized", "zca": "zca"}
"""Space of the stored images -> space students are trained and tested in."""

ZCALike: TypeAlias = ZCA | Mapping[str, Tensor]
Stats: TypeAlias = Sequence[float] | Tensor


def as_zca(zca: ZCALike | None) -> ZCA | None:
    """A :class:`ZCA` from a ZCA or its :meth:`ZCA.state_dict` (e.g. ``DistilledSet.zca``); ``None`` stays ``None``.

    Rebuilding from a state is cheap, but the whitening matrices are cached on the object: pass the same
    :class:`ZCA` to repeated calls instead of a state dict.
    """
    if zca is None or isinstance(zca, ZCA):
        return zca
    if isinstance(zca, Mapping):
        return ZCA.from_state(zca)
    raise TypeError(f"zca must be a ZCA, its state dict or None, got {type(zca).__name__}")


def check_space(space: str, zca: ZCALike | None = None, image_shape: Sequence[int] | None = None) -> ImageSpace:
    """Validate an image space name (and, for ``"zca"``, the presence and shape of the ZCA); returns the space.

    Args:
        space: one of :data:`IMAGE_SPACES`.
        zca: the ZCA (or its state) for ``space == "zca"``; ignored for the other spaces.
        image_shape: ``(C, H, W)`` the ZCA must apply to (checked when given).

    Raises:
        ValueError: an unknown space, a ``"zca"`` space without ZCA state, or a ZCA of another image shape.
    """
    if space not in IMAGE_SPACES:
        raise ValueError(f"unknown image space {space!r}; expected one of {IMAGE_SPACES}")
    if space == "zca":
        if zca is None:
            raise ValueError("image space 'zca' needs the ZCA state (fit ZCA on the train split, or load the "
                             "artifact's `zca` field); got none")
        if not isinstance(zca, ZCA | Mapping):
            raise TypeError(f"zca must be a ZCA or its state dict, got {type(zca).__name__}")
        if image_shape is not None:
            whitening = as_zca(zca)
            assert whitening is not None
            if tuple(int(s) for s in image_shape) != whitening.image_shape:
                raise ValueError(f"the ZCA applies to images {whitening.image_shape}, not to images "
                                 f"{tuple(int(s) for s in image_shape)}")
    return cast(ImageSpace, space)


def _pixels(images: Tensor) -> Tensor:
    """``uint8`` [0, 255] -> float32 [0, 1]; floating point -> float32 (no copy when already float32)."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if images.is_floating_point():
        return images.to(torch.float32)
    raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")


def _stats(values: Stats, x: Tensor, name: str) -> Tensor:
    t = torch.as_tensor(values, dtype=torch.float32, device=x.device).reshape(-1, 1, 1)
    if t.shape[0] != x.shape[-3]:
        raise ValueError(f"{name} has {t.shape[0]} values for {x.shape[-3]}-channel images")
    return t


def encode(images: Tensor, space: str, mean: Stats, std: Stats, zca: ZCALike | None = None) -> Tensor:
    """Real images -> ``space``, float32 on the images' device.

    Args:
        images: ``(B, C, H, W)`` (``(..., C, H, W)`` for the non-ZCA spaces): ``uint8`` in [0, 255] or floating
            point in [0, 1] (the ``ToTensor`` scale).
        space: target space (:data:`IMAGE_SPACES`).
        mean, std: ``C`` per-channel statistics (used by ``"normalized"``).
        zca: the fitted ZCA (or its state) for ``"zca"``.

    Returns:
        ``float32`` images of the same shape. For ``"pixels"`` with float32 input this is ``images`` itself.
    """
    check_space(space, zca)
    if images.dim() < 3:
        raise ValueError(f"images must be (..., C, H, W), got shape {tuple(images.shape)}")
    if space == "normalized":
        return normalize(images, mean, std)
    if space == "pixels":
        return _pixels(images)
    whitening = as_zca(zca)
    assert whitening is not None
    return whitening.transform(_pixels(images))


def to_pixels(x: Tensor, space: str, mean: Stats, std: Stats, zca: ZCALike | None = None) -> Tensor:
    """Images in ``space`` -> float32 [0, 1] pixel units (not clamped), for viewing; inverse of :func:`encode`.

    Args:
        x: ``(B, C, H, W)`` floating-point images in ``space``.
        space, mean, std, zca: as in :func:`encode`.
    """
    check_space(space, zca)
    if not x.is_floating_point() or x.dim() < 3:
        raise ValueError(f"x must be floating-point (..., C, H, W) images, got {x.dtype} {tuple(x.shape)}")
    x = x.to(torch.float32)
    if space == "normalized":
        return x * _stats(std, x, "std") + _stats(mean, x, "mean")
    if space == "pixels":
        return x
    whitening = as_zca(zca)
    assert whitening is not None
    return whitening.inverse(x)


def evaluation_space(space: str) -> ImageSpace:
    """The space students of a ``space`` set are trained and tested in (see the module docstring)."""
    if space not in EVALUATION_SPACES:
        raise ValueError(f"unknown image space {space!r}; expected one of {IMAGE_SPACES}")
    return EVALUATION_SPACES[space]


def to_evaluation_space(x: Tensor, space: str, mean: Stats, std: Stats, zca: ZCALike | None = None) -> Tensor:
    """Set images in ``space`` -> float32 images in :func:`evaluation_space` ``(space)``.

    ``normalized`` and ``zca`` images are already there (returned as float32, not copied when float32);
    ``pixels`` images are normalised with exactly the operation :func:`encode` applies to real images, so a
    pixel-space set equal to ``p`` gives bit-identical student inputs to the normalised set ``encode(p)``.
    Pixel values outside [0, 1] are kept (no clamping), as IDC's evaluation does.
    """
    check_space(space, zca)
    if not x.is_floating_point():
        raise TypeError(f"set images must be floating point, got {x.dtype}")
    if space == "pixels":
        return normalize(x, mean, std)
    return x.to(torch.float32)


def check_artifact_space(distilled: DistilledSet) -> ImageSpace:
    """Refuse an artifact whose space cannot be evaluated correctly; returns its (valid) space.

    Raises:
        ValueError: an unknown space; ``"zca"`` without (or with invalid) ZCA state, or with a ZCA of another image
            shape; ZCA state on a non-ZCA set (ambiguous: were the images whitened or not?).
    """
    space = distilled.space
    if space not in IMAGE_SPACES:
        raise ValueError(f"distilled set ({distilled.method}, {distilled.dataset}) has image space {space!r}, which no "
                         f"evaluator handles; expected one of {IMAGE_SPACES}")
    if space != "zca" and distilled.zca is not None:
        raise ValueError(f"distilled set ({distilled.method}, {distilled.dataset}) is in space {space!r} but carries "
                         f"ZCA state; only a 'zca' set may (were its images whitened?)")
    try:
        return check_space(space, distilled.zca, distilled.image_shape)
    except (TypeError, ValueError) as err:
        raise ValueError(f"distilled set ({distilled.method}, {distilled.dataset}) cannot be evaluated: {err}") from err


def evaluation_tensors(
    distilled: DistilledSet, test_images: Tensor, zca: ZCA | None = None
) -> tuple[Tensor, Tensor]:
    """The student inputs for an artifact: ``(train_images, test_images)``, both float32 in its evaluation space.

    Args:
        distilled: the artifact (validated with :func:`check_artifact_space`).
        test_images: the real test split, ``uint8 (N, C, H, W)`` (or [0, 1] floats), any device.
        zca: the artifact's ZCA already built (saves rebuilding it and its matrices); default: from
            ``distilled.zca``.

    Returns:
        ``train_images`` ``(n, C, H, W)`` (from ``distilled.images``) and ``test_images`` ``(N, C, H, W)``
        encoded into the same space, each on its input's device.
    """
    space = check_artifact_space(distilled)
    if tuple(test_images.shape[1:]) != distilled.image_shape:
        raise ValueError(f"test images {tuple(test_images.shape[1:])} do not match the distilled set's images "
                         f"{distilled.image_shape}")
    whitening = zca if zca is not None else as_zca(distilled.zca)
    train = to_evaluation_space(distilled.images, space, distilled.mean, distilled.std, whitening)
    test = encode(test_images, evaluation_space(space), distilled.mean, distilled.std, whitening)
    return train, test


def for_evaluation(distilled: DistilledSet) -> DistilledSet:
    """The artifact with its images moved to the evaluation space (``space`` updated; ``zca`` kept for ``zca``).

    For evaluators that read ``distilled.images`` directly (``lightning_dd.evaluation.loop.train_student``); the
    test images must then be ``encode(test, evaluation_space(distilled.space), ...)``.
    """
    space = check_artifact_space(distilled)
    target = evaluation_space(space)
    if target == space:
        return distilled
    images = to_evaluation_space(distilled.images, space, distilled.mean, distilled.std)
    return dataclasses.replace(distilled, images=images, space=target)
