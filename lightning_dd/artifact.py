"""The distilled-set artifact: one self-describing file that evaluation (or plain PyTorch) can use correctly.

The file is a ``torch.save`` of a dict of tensors and plain Python values, so it loads with
``torch.load(path, weights_only=True)`` and nothing from this library::

    import torch
    d = torch.load("distilled.pt", weights_only=True)
    images, labels = d["images"], d["labels"]   # normalised with d["mean"], d["std"]
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightning_dd._atomic import atomic_torch_save
from lightning_dd.synthetic import IMAGE_SPACES

FORMAT = "lightning_dd.distilled_set"
FORMAT_VERSION = 1
_TENSOR_FIELDS = ("images", "labels", "soft_labels", "lr")


@dataclass
class DistilledSet:
    """A distilled (or selected) synthetic set with everything needed to use it.

    Attributes:
        images: float32 ``(N, C, H, W)`` training-ready (decoded) images in ``space`` (``"normalized"``:
            ``(x - mean) / std`` of [0, 1] pixels; ``"pixels"``: [0, 1]; ``"zca"``: ZCA of [0, 1] pixels).
        labels: int64 ``(N,)`` hard labels.
        dataset: registry name of the real dataset (e.g. ``"cifar10"``).
        class_names: names of the classes, label order.
        mean, std: per-channel normalisation of the real data the set was distilled from.
        method: method that produced it (``"DM"``, ``"random"``, ...).
        ipc: images per class.
        seed: run seed.
        soft_labels: optional float32 ``(N, K)`` soft labels (logits).
        lr: optional learned student learning rate (float).
        space: ``"normalized"``, ``"pixels"`` or ``"zca"``.
        zca: optional ZCA state (tensors) for ``space == "zca"``.
        factor: decode factor of the method's stored images (IDC multi-formation / IDM partition; informational:
            ``images`` are already decoded, ``ipc * factor**2`` per class).
        dsa_strategy: augmentation strategy the evaluation protocol uses for this dataset.
        hparams: method hyper-parameters (JSON-like values only).
        version: library version that wrote it.
        provenance: how the set came about (JSON-like): ``iterations`` run, ``batch_real``, ``init_indices`` (the
            train-split indices of the real images it was initialised from, when known), ``evaluation`` (the run's
            in-run results), ``versions`` (lightning_dd, torch, lightning, python).
    """

    images: Tensor
    labels: Tensor
    dataset: str
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    method: str
    ipc: int
    seed: int
    soft_labels: Tensor | None = None
    lr: float | None = None
    space: str = "normalized"
    zca: dict[str, Tensor] | None = None
    factor: int = 1
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    hparams: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor) or not self.images.is_floating_point():
            kind = self.images.dtype if isinstance(self.images, Tensor) else type(self.images).__name__
            raise ValueError(f"images must be a floating-point tensor (float32), got {kind}")
        if self.images.dtype != torch.float32:  # float64 / half: stored as the format says, float32
            self.images = self.images.float()
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(self.images.shape)}")
        _check_finite("images", self.images)
        if self.soft_labels is not None:
            _check_finite("soft_labels", self.soft_labels)
        if self.lr is not None and not (math.isfinite(float(self.lr)) and float(self.lr) > 0):
            raise ValueError(f"lr (the learned student learning rate) must be a finite number > 0, got {self.lr!r}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be ({self.images.shape[0]},), got {tuple(self.labels.shape)}")
        if len(self.mean) != self.images.shape[1] or len(self.std) != self.images.shape[1]:
            raise ValueError(f"mean/std need {self.images.shape[1]} channels, got {self.mean} / {self.std}")
        n, k = self.images.shape[0], len(self.class_names)
        if self.labels.numel() and (int(self.labels.min()) < 0 or int(self.labels.max()) >= k):
            raise ValueError(
                f"labels must lie in [0, {k}) ({k} class names), got values in "
                f"[{int(self.labels.min())}, {int(self.labels.max())}]"
            )
        if self.soft_labels is not None and tuple(self.soft_labels.shape) != (n, k):
            raise ValueError(f"soft_labels must be ({n}, {k}), got {tuple(self.soft_labels.shape)}")
        if self.space not in IMAGE_SPACES:
            raise ValueError(f"space must be one of {IMAGE_SPACES}, got {self.space!r}: no evaluator can score "
                             "images whose meaning is unknown")
        if self.space == "zca" and not self.zca:
            raise ValueError("a 'zca'-space set needs its ZCA state (zca=...): without it its test split cannot be "
                             "whitened alike")
        if isinstance(self.factor, bool) or not isinstance(self.factor, int) or self.factor < 1:
            raise ValueError(f"factor must be an integer >= 1, got {self.factor!r}")
        if not self.version:
            from lightning_dd import __version__

            self.version = __version__

    def check_data(self, name: str, class_names: tuple[str, ...], mean: tuple[float, ...], std: tuple[float, ...],
                   image_shape: tuple[int, ...], source: str) -> None:
        """Refuse real data that is not what the set was distilled from (names what differs, both values).

        ``source`` says where the data came from (e.g. ``"image_folder under /data/x"``). Statistics are compared
        to 1e-5 (an image-folder copy with other images has other statistics, even with the same class names).
        """
        differences = []
        if name != self.dataset:
            differences.append(f"dataset {self.dataset!r} vs {name!r}")
        if tuple(image_shape) != self.image_shape:
            differences.append(f"image shape {self.image_shape} vs {tuple(image_shape)}")
        if tuple(class_names) != self.class_names:
            differences.append(f"class names {list(self.class_names)} vs {list(class_names)}")
        for what, ours, theirs in (("mean", self.mean, mean), ("std", self.std, std)):
            if len(ours) != len(theirs) or any(abs(a - b) > 1e-5 for a, b in zip(ours, theirs, strict=False)):
                differences.append(f"{what} {list(ours)} vs {list(theirs)}")
        if differences:
            raise ValueError(f"the distilled set ({self.method}, {self.dataset}) does not match the {source}: "
                             + "; ".join(differences) + " (the set's value first); evaluate it on the data it was "
                             "distilled from")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def to_dict(self) -> dict[str, Any]:
        """The file content: tensors (on CPU, detached) and JSON-like values."""
        d = asdict(self)
        for key in _TENSOR_FIELDS:
            value = getattr(self, key)
            if isinstance(value, Tensor):
                d[key] = value.detach().cpu().clone()
        if self.zca is not None:
            d["zca"] = {k: v.detach().cpu().clone() for k, v in self.zca.items()}
        d["class_names"] = list(self.class_names)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["image_shape"] = list(self.image_shape)
        d["format"], d["format_version"] = FORMAT, FORMAT_VERSION
        return d

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically: a temporary file in the same directory, then ``os.replace``. Returns the path."""
        return atomic_torch_save(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DistilledSet:
        """Read a file written by :meth:`save`; a missing, corrupt or foreign file raises a clear error."""
        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(f"distilled set {str(path)!r} is a directory; give the artifact file (e.g. "
                                    f"{str(path / 'distilled.pt')!r})")
        if not path.is_file():
            raise FileNotFoundError(f"distilled set {str(path)!r} does not exist")
        if path.stat().st_size == 0:
            raise ValueError(f"distilled set {str(path)!r} is empty (0 bytes)")
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for truncated/garbage files
            raise ValueError(f"{str(path)!r} is not a readable lightning_dd distilled set ({err})") from err
        if isinstance(d, dict) and {"state_dict", "loops"} <= d.keys():
            raise ValueError(f"{str(path)!r} is a Lightning training checkpoint, not a distilled set: pass it as "
                             "--ckpt_path to resume, or give the distilled.pt the run wrote")
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(
                f"{str(path)!r} is not a lightning_dd distilled set: expected a dict with format={FORMAT!r}"
            )
        if d.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r} has format_version {d['format_version']}, newer than this library reads "
                f"({FORMAT_VERSION}); upgrade lightning-dd"
            )
        names = set(cls.__dataclass_fields__)
        missing = {"images", "labels", "dataset", "class_names", "mean", "std", "method", "ipc", "seed"} - d.keys()
        if missing:
            raise ValueError(f"{str(path)!r} is missing the fields {sorted(missing)}")
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs["class_names"] = tuple(kwargs["class_names"])
        kwargs["mean"], kwargs["std"] = tuple(kwargs["mean"]), tuple(kwargs["std"])
        try:
            return cls(**kwargs)
        except ValueError as err:
            raise ValueError(f"{str(path)!r} is not a usable distilled set: {err}") from err


def _check_finite(name: str, values: Tensor) -> None:
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        nan, inf = int(torch.isnan(values).sum()), int(torch.isinf(values).sum())
        raise ValueError(f"{name} hold {nan} NaN and {inf} infinite values (of {values.numel()}); a distilled set "
                         "must be finite")
