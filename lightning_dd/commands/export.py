"""``lightning-dd export``: hand a distilled set to other tools (tensors, an image folder, DD-Ranking).

* ``tensors``: ``images.pt`` float32 ``(N, C, H, W)`` in [0, 1] pixel units -- the exact inverse of the set's space
  transform, *not* clipped (values outside [0, 1] are counted and kept, so nothing is lost) --, ``labels.pt`` int64,
  ``lr.pt`` (the learned student lr, when the set has one) and ``meta.json`` (class names, dataset, counts).
* ``image_folder``: ``DIR/train/<NNN>_<class name>/<i>.png`` (8-bit, so values are clipped to [0, 1] and rounded;
  the number of clipped values is reported). The ``NNN`` prefix keeps the label order under the alphabetical order
  that ``torchvision.datasets.ImageFolder`` sorts classes by.
* ``dd_ranking``: ``images.pt`` normalised with the statistics DD-Ranking uses for the dataset (its
  ``ddranking/utils/data.py``: CIFAR-10 *and* CIFAR-100 with (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010),
  Tiny ImageNet with ImageNet's), ``labels.pt``, ``lr.pt`` -- ready for its ``images``/``labels``/``lr`` inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch import Tensor

from lightning_dd._atomic import atomic_torch_save, atomic_write, check_writable, json_text
from lightning_dd.artifact import DistilledSet
from lightning_dd.data.spaces import as_zca, to_pixels

__all__ = ["DD_RANKING_STATS", "export", "pixel_images"]

#: dataset -> (DD-Ranking's name, mean, std) of the normalisation DD-Ranking applies
DD_RANKING_STATS: dict[str, tuple[str, tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ("CIFAR10", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ("CIFAR100", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "tiny_imagenet": ("TinyImageNet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
FORMATS = ("tensors", "image_folder", "dd_ranking")


def pixel_images(distilled: DistilledSet) -> Tensor:
    """The set's images as float32 [0, 1] pixel units ``(N, C, H, W)``, exact inverse of its space, not clipped."""
    return to_pixels(distilled.images.detach().float(), distilled.space, distilled.mean, distilled.std,
                     as_zca(distilled.zca))


def _out_of_range(pixels: Tensor) -> int:
    return int(((pixels < 0) | (pixels > 1)).sum())


def _save_tensors(directory: Path, images: Tensor, distilled: DistilledSet) -> None:
    atomic_torch_save(images.contiguous(), directory / "images.pt")
    atomic_torch_save(distilled.labels.clone(), directory / "labels.pt")
    if distilled.lr is not None:
        atomic_torch_save(torch.tensor(distilled.lr), directory / "lr.pt")


def _save_folder(directory: Path, pixels: Tensor, distilled: DistilledSet) -> None:
    digits = max(3, len(str(distilled.num_classes - 1)))
    as_bytes = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    counts = [0] * distilled.num_classes
    for image, label in zip(as_bytes, distilled.labels.tolist(), strict=True):
        name = distilled.class_names[label].replace("/", "_")
        folder = directory / "train" / f"{label:0{digits}d}_{name}"
        picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)

        def write(tmp: Path, picture: Image.Image = picture) -> None:
            picture.save(tmp, format="png")

        atomic_write(folder / f"{counts[label]:05d}.png", write)
        counts[label] += 1


def export(
    distilled: str,
    to: Literal["tensors", "image_folder", "dd_ranking"],
    directory: str,
) -> dict[str, Any]:
    """Export a distilled set for other tools (one JSON line on stdout saying what was written).

    Args:
        distilled: the artifact.
        to: ``tensors`` (lossless [0, 1] pixel tensors), ``image_folder`` (8-bit PNGs, class-index-ordered
            folders) or ``dd_ranking`` (tensors normalised as DD-Ranking normalises the dataset).
        directory: the folder to write into (created).
    """
    if to not in FORMATS:
        raise ValueError(f"unknown export format {to!r}; allowed: {', '.join(FORMATS)}")
    artifact = DistilledSet.load(distilled)
    if to == "dd_ranking" and artifact.dataset not in DD_RANKING_STATS:
        raise ValueError(f"DD-Ranking has no {artifact.dataset!r}; it takes {', '.join(DD_RANKING_STATS)}")
    out = Path(directory)
    check_writable(out / "meta.json", "export")
    pixels = pixel_images(artifact)
    outside = _out_of_range(pixels)
    result: dict[str, Any] = {"distilled": distilled, "to": to, "directory": str(out), "images": len(artifact.labels),
                              "values": pixels.numel(), "values_outside_0_1": outside}
    if to == "tensors":
        _save_tensors(out, pixels, artifact)
    elif to == "image_folder":
        _save_folder(out, pixels, artifact)
        result["values_clipped"] = outside
    else:
        name, mean, std = DD_RANKING_STATS[artifact.dataset]
        m, s = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
        _save_tensors(out, (pixels - m) / s, artifact)
        result.update({"dd_ranking_dataset": name, "mean": list(mean), "std": list(std)})
    meta = {**result, "dataset": artifact.dataset, "class_names": list(artifact.class_names), "method": artifact.method,
            "ipc": artifact.ipc, "lr": artifact.lr}
    text = json_text(meta) + "\n"

    def write_meta(tmp: Path) -> None:
        tmp.write_text(text)

    atomic_write(out / "meta.json", write_meta)
    return result

