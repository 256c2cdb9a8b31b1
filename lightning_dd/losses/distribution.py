"""Distribution matching distances (DM, and IDM next): mean embeddings of real and synthetic images per class.

Pure torch, no Lightning. The reference (``VICO-UoE/DatasetCondensation: main_DM.py``) loops over classes: per class
``c`` the real batch and the synthetic images go through the same (siamese) DSA draw, then the same network, and the
squared distance of the two mean embeddings is summed over classes. :func:`distribution_matching` computes that sum
for any chunking of the classes into forward passes (``classes_per_forward``): instance-norm networks give the same
value for every chunking; BatchNorm networks must see all classes in one forward (the reference's BN branch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lightning_dd.augment import DSA, DSAParams

__all__ = ["MatchedEmbeddings", "class_chunks", "distribution_matching", "mean_embedding_distance", "part_sizes",
           "real_class_means"]


def class_chunks(num_classes: int, classes_per_forward: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(num_classes)`` in chunks of ``classes_per_forward`` classes."""
    if classes_per_forward < 1:
        raise ValueError(f"classes_per_forward must be >= 1, got {classes_per_forward}")
    return [(c, min(c + classes_per_forward, num_classes)) for c in range(0, num_classes, classes_per_forward)]


def part_sizes(n: int, size: int) -> list[int]:
    """Sizes of the forwards that embed ``n`` images at most ``size`` at a time, with no 1-image last part.

    A 1-image batch makes the CPU convolution library (oneDNN) pick another kernel for the first convolution, whose
    last bits differ; folding a lone last image into the previous part keeps the split embeddings bit-identical to
    the whole-batch ones (checked on this CPU for every part size >= 2).
    """
    sizes = [size] * (n // size) + ([n % size] if n % size else [])
    if len(sizes) > 1 and sizes[-1] == 1:
        last = sizes.pop()
        sizes[-1] += last
    return sizes


@dataclass
class MatchedEmbeddings:
    """The result of :func:`distribution_matching`.

    Attributes:
        loss: scalar, ``sum_c || mean_i e(A_c(x_real[c, i])) - mean_j e(A_c(x_syn[c, j])) ||^2``.
        augmented: ``(K*ipc, C, H, W)`` synthetic images after DSA (when requested), with gradient.
        syn_feature_maps: ``(K*ipc, c, h, w)`` the network's last maps of ``augmented`` (when requested).
        real_feature_maps: ``(K*k, c, h, w)`` the same of the augmented real images, detached (when requested).
    """

    loss: Tensor
    augmented: Tensor | None = None
    syn_feature_maps: Tensor | None = None
    real_feature_maps: Tensor | None = None


def distribution_matching(
    net: nn.Module,
    real: Tensor,
    synthetic: Tensor,
    dsa: DSA,
    dsa_params: DSAParams | None,
    classes_per_forward: int,
    keep_augmented: bool = False,
    keep_feature_maps: bool = False,
    real_images_per_forward: int | None = None,
) -> MatchedEmbeddings:
    """Sum over classes of the squared distance between mean real and mean synthetic embeddings.

    Args:
        net: embedding network with ``embed(x) -> (B, D)`` (and ``feature_map`` / ``embed_from_map`` when
            ``keep_feature_maps``).
        real: ``(K, k, C, H, W)`` real images (no gradient is taken through them).
        synthetic: ``(K, ipc, C, H, W)`` synthetic images.
        dsa: the augmentation (the identity DSA for none).
        dsa_params: one parameter group per class (class ``c``'s real and synthetic images share group ``c``);
            ``None`` for the identity.
        classes_per_forward: classes per network forward (chunking changes speed/memory, not the value).
        keep_augmented: also return the augmented synthetic images.
        keep_feature_maps: also return the feature maps (one forward either way).
        real_images_per_forward: embed the (no-gradient) real images in forwards of at most this many images
            (``None``: a chunk's real images in one forward). Only for networks whose per-image output does not
            depend on the batch (no BatchNorm in train mode): equal up to float rounding. On the CPU this keeps every
            activation below glibc's mmap threshold (32 MiB), so freed blocks are reused instead of returned to the
            OS and page-faulted back each iteration (at 256 real/class a ConvNet-3 activation is 134 MB).

    Returns:
        :class:`MatchedEmbeddings`.
    """
    num_classes, k = real.shape[:2]
    ipc = synthetic.shape[1]
    if real_images_per_forward is not None and real_images_per_forward < 1:
        raise ValueError(f"real_images_per_forward must be >= 1 or None, got {real_images_per_forward}")
    loss = real.new_zeros(())
    augmented: list[Tensor] = []
    syn_maps: list[Tensor] = []
    real_maps: list[Tensor] = []

    # `net` is duck-typed (a DistillationNetwork in practice); nn.Module.__getattr__ types its embed / feature_map /
    # embed_from_map as Tensor | Module, hence the [operator] ignores
    def embed(x: Tensor, keep: list[Tensor]) -> Tensor:
        if not keep_feature_maps:
            return net.embed(x)  # type: ignore[operator]
        maps = net.feature_map(x)  # type: ignore[operator]
        keep.append(maps)
        return net.embed_from_map(maps)  # type: ignore[operator]

    params = None if dsa.is_identity else dsa_params
    for start, stop in class_chunks(num_classes, classes_per_forward):
        xr = real[start:stop].flatten(0, 1)
        xs = synthetic[start:stop].flatten(0, 1)
        chunk_params = None if params is None else params[start:stop]
        if chunk_params is not None:
            xs = dsa.apply(xs, chunk_params)
        if keep_augmented:
            augmented.append(xs)
        with torch.no_grad():
            if chunk_params is not None:
                xr = dsa.apply(xr, chunk_params)
            parts = xr.split(part_sizes(xr.shape[0], real_images_per_forward)) if real_images_per_forward else (xr,)
            embedded = torch.cat([embed(part, real_maps) for part in parts]) if len(parts) > 1 else embed(xr, real_maps)
            mean_real = embedded.view(stop - start, k, -1).mean(1)
        mean_syn = embed(xs, syn_maps).view(stop - start, ipc, -1).mean(1)
        loss = loss + ((mean_real - mean_syn) ** 2).sum()
    return MatchedEmbeddings(
        loss=loss,
        augmented=torch.cat(augmented) if keep_augmented else None,
        syn_feature_maps=torch.cat(syn_maps) if keep_feature_maps else None,
        real_feature_maps=torch.cat(real_maps) if keep_feature_maps else None,
    )


def mean_embedding_distance(real_mean: Tensor, syn_embeddings: Tensor) -> Tensor:
    """``|| real_mean - mean_j syn_embeddings[j] ||_2^2``: one class's distribution-matching term.

    Args:
        real_mean: ``(D,)`` mean embedding of the class's (augmented) real images, a constant.
        syn_embeddings: ``(n, D)`` embeddings of its (augmented) synthetic images, with gradient.
    """
    return ((real_mean.detach() - syn_embeddings.mean(0)) ** 2).sum()


def real_class_means(net: nn.Module, real: Tensor, dsa: DSA, dsa_params: DSAParams | None,
                     images_per_forward: int | None = None) -> Tensor:
    """Mean embedding of every class's real images after its own DSA draw, without gradient: ``(K, D)``.

    The per-class loop of the reference embeds class ``c``'s real batch right before class ``c``'s image step; the
    network does not change between those steps (only the images do), so all classes can be embedded up front, in
    forwards of at most ``images_per_forward`` images (``None``: all ``K * k`` in one). Equal to embedding class by
    class up to float rounding, for networks whose per-image output does not depend on the batch (no BatchNorm in
    train mode).

    Args:
        net: network with ``embed(x) -> (B, D)``.
        real: ``(K, k, C, H, W)``.
        dsa, dsa_params: the augmentation and one parameter group per class (``None`` for the identity).
        images_per_forward: forward size (>= 1) or ``None``.
    """
    num_classes, k = real.shape[:2]
    if images_per_forward is not None and images_per_forward < 1:
        raise ValueError(f"images_per_forward must be >= 1 or None, got {images_per_forward}")
    with torch.no_grad():
        x = real.flatten(0, 1)
        if not dsa.is_identity and dsa_params is not None:
            x = dsa.apply(x, dsa_params)  # class c's k images take parameter group c
        size = images_per_forward or x.shape[0]
        parts = x.split(part_sizes(x.shape[0], size))
        embedded = torch.cat([net.embed(part) for part in parts])  # type: ignore[operator]
        return embedded.view(num_classes, k, -1).mean(1)
