"""The ConvNet used throughout the dataset-distillation literature, and the shared network interface.

Architecture (VICO-UoE/DatasetCondensation ``ConvNet``), per depth ``d``::

    Conv2d(in, width, 3, padding=3 if (channels == 1 and d == 0 and image is 28x28) else 1)
    -> norm -> act -> pool(2, 2)

followed by ``flatten -> Linear(width * h * w, num_classes)``. The padding-3 first convolution turns a
1x28x28 (MNIST-like) image into a 32x32 map, so such inputs get the same feature size as 32x32 inputs.

Every network of :mod:`lightning_dd.networks` implements :class:`DistillationNetwork`:

* ``forward(x)``: ``(B, C, H, W) -> (B, num_classes)`` logits;
* ``embed(x)``: ``(B, C, H, W) -> (B, feature_dim)``, the vector fed to ``classifier``;
* ``feature_map(x)``: ``(B, C, H, W) -> (B, c, h, w)``, the last spatial map before flattening/pooling;
* attributes ``feature_dim``, ``num_classes``, ``classifier`` (the final ``nn.Linear``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "POOLINGS",
    "ConvNet",
    "DistillationNetwork",
    "as_image_size",
    "make_activation",
    "make_norm",
    "make_pooling",
]

NORMS: tuple[str, ...] = ("instancenorm", "batchnorm", "layernorm", "groupnorm", "none")
ACTIVATIONS: tuple[str, ...] = ("relu", "leakyrelu", "sigmoid", "swish", "silu", "gelu")
POOLINGS: tuple[str, ...] = ("avgpooling", "maxpooling", "none")


def as_image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """Normalise ``image_size`` (an int or an ``(H, W)`` pair) to a ``(H, W)`` tuple of positive ints."""
    if isinstance(image_size, bool):
        raise TypeError(f"image_size must be an int or an (H, W) pair, got {image_size!r}")
    hw: tuple[int, ...]
    if isinstance(image_size, int):
        hw = (image_size, image_size)
    else:
        try:
            hw = tuple(int(s) for s in image_size)
        except TypeError as err:
            raise TypeError(f"image_size must be an int or an (H, W) pair, got {image_size!r}") from err
        if len(hw) != 2:
            raise ValueError(f"image_size must be an int or an (H, W) pair, got {image_size!r}")
    if hw[0] <= 0 or hw[1] <= 0:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return hw[0], hw[1]


def _check_choice(kind: str, value: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; allowed: {', '.join(allowed)}")
    return value.lower()


def make_norm(norm: str, channels: int, spatial: tuple[int, int]) -> nn.Module | None:
    """Build the normalisation layer ``norm`` for a ``(channels, *spatial)`` map (``None`` for ``"none"``).

    ``"instancenorm"`` is ``GroupNorm(C, C, affine=True)`` as in the reference code (per-sample, per-channel
    statistics with a learnable affine), ``"groupnorm"`` is ``GroupNorm(4, C)``, ``"layernorm"`` normalises over
    ``[C, H, W]`` with an element-wise affine, ``"batchnorm"`` is ``BatchNorm2d(C)``.
    """
    norm = _check_choice("norm", norm, NORMS)
    if norm == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if norm == "batchnorm":
        return nn.BatchNorm2d(channels, affine=True)
    if norm == "layernorm":
        return nn.LayerNorm([channels, spatial[0], spatial[1]], elementwise_affine=True)
    if norm == "groupnorm":
        return nn.GroupNorm(4, channels, affine=True)
    return None


def make_activation(act: str) -> nn.Module:
    """Build the activation ``act`` (``leakyrelu`` has slope 0.01; ``swish`` and ``silu`` are ``x*sigmoid(x)``)."""
    act = _check_choice("act", act, ACTIVATIONS)
    if act == "relu":
        return nn.ReLU()
    if act == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.01)
    if act == "sigmoid":
        return nn.Sigmoid()
    if act in ("swish", "silu"):
        return nn.SiLU()
    return nn.GELU()


def make_pooling(pooling: str) -> nn.Module | None:
    """Build the 2x2/stride-2 pooling ``pooling`` (``None`` for ``"none"``)."""
    pooling = _check_choice("pooling", pooling, POOLINGS)
    if pooling == "avgpooling":
        return nn.AvgPool2d(kernel_size=2, stride=2)
    if pooling == "maxpooling":
        return nn.MaxPool2d(kernel_size=2, stride=2)
    return None


class DistillationNetwork(nn.Module, ABC):
    """Base class of the networks: ``forward(x) = classifier(embed(x))``.

    Subclasses set ``num_classes``, ``feature_dim``, ``classifier`` and ``feature_map_shape`` (``(c, h, w)`` of
    :meth:`feature_map`, ``None`` when the network has no spatial map) and implement :meth:`embed` and
    :meth:`feature_map`.
    """

    num_classes: int
    feature_dim: int
    classifier: nn.Linear
    in_channels: int
    image_size: tuple[int, int]
    feature_map_shape: tuple[int, int, int] | None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, feature_dim)``: the penultimate vector fed to ``classifier``
        (``embed_from_map(feature_map(x))``; networks without a spatial map override it)."""
        return self.embed_from_map(self.feature_map(x))

    @abstractmethod
    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, c, h, w)``: the last spatial feature map."""

    def embed_from_map(self, maps: torch.Tensor) -> torch.Tensor:
        """``(B, c, h, w) -> (B, feature_dim)``: the embedding computed from :meth:`feature_map`'s output, so that
        ``embed_from_map(feature_map(x)) == embed(x)`` and a caller needing both pays one forward. Default: flatten
        (ConvNet, AlexNet, VGG11); networks with a head between the map and the embedding override it."""
        return self._flatten_checked(maps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, num_classes)`` logits."""
        return self.classifier(self.embed(x))

    def _flatten_checked(self, maps: torch.Tensor) -> torch.Tensor:
        """Flatten ``(B, ...) -> (B, prod)`` and check the result has ``feature_dim`` columns."""
        flat = maps.flatten(1)
        if flat.shape[1] != self.feature_dim:
            raise ValueError(
                f"{type(self).__name__} was built for (B, {self.in_channels}, {self.image_size[0]}, "
                f"{self.image_size[1]}) inputs (feature_dim {self.feature_dim}) but the input gave "
                f"{flat.shape[1]} features; pass images of the size the network was created for"
            )
        return flat


class ConvNet(DistillationNetwork):
    """VICO ``ConvNet``: ``depth`` blocks of conv3x3 -> norm -> act -> pool, then a linear classifier.

    Args:
        channels: input channels ``C``.
        num_classes: number of output logits.
        image_size: input ``(H, W)`` (or ``H`` for square images).
        width: conv channels of every block (128).
        depth: number of blocks (3).
        norm: one of :data:`NORMS` (``"instancenorm"`` = ``GroupNorm(C, C)``).
        act: one of :data:`ACTIVATIONS`.
        pooling: one of :data:`POOLINGS`.

    Shapes: input ``(B, C, H, W)``; :meth:`feature_map` ``(B, width, h, w)`` with ``h = H' // 2**depth``
    (``H' = 32`` for 1x28x28 inputs, else ``H``; no division without pooling); :meth:`embed`
    ``(B, width*h*w)``; ``forward`` ``(B, num_classes)``. E.g. 3x32x32, depth 3: feature map ``(B, 128, 4, 4)``,
    ``feature_dim`` 2048.

    Raises:
        ValueError: unknown ``norm``/``act``/``pooling``, non-positive sizes, or (with pooling) an image
            smaller than ``2**depth``.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: int | Sequence[int] = (32, 32),
        width: int = 128,
        depth: int = 3,
        norm: str = "instancenorm",
        act: str = "relu",
        pooling: str = "avgpooling",
    ) -> None:
        super().__init__()
        hw = as_image_size(image_size)
        if channels <= 0 or num_classes <= 0 or width <= 0:
            raise ValueError(
                f"channels, num_classes and width must be positive, got {channels}, {num_classes}, {width}"
            )
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        norm = _check_choice("norm", norm, NORMS)
        act = _check_choice("act", act, ACTIVATIONS)
        pooling = _check_choice("pooling", pooling, POOLINGS)
        self.in_channels = channels
        self.num_classes = num_classes
        self.image_size = hw
        self.width, self.depth, self.norm, self.act, self.pooling = width, depth, norm, act, pooling

        layers: list[nn.Module] = []
        in_c, (h, w) = channels, hw
        for d in range(depth):
            pad = 3 if (channels == 1 and d == 0 and hw == (28, 28)) else 1
            layers.append(nn.Conv2d(in_c, width, kernel_size=3, padding=pad))
            h, w = h + 2 * pad - 2, w + 2 * pad - 2
            norm_layer = make_norm(norm, width, (h, w))
            if norm_layer is not None:
                layers.append(norm_layer)
            layers.append(make_activation(act))
            pool_layer = make_pooling(pooling)
            if pool_layer is not None:
                if h < 2 or w < 2:
                    raise ValueError(
                        f"image size {hw[0]}x{hw[1]} is too small for a depth-{depth} ConvNet with {pooling}: "
                        f"every block halves the map, so both sides must be >= 2**depth = {2**depth}"
                    )
                layers.append(pool_layer)
                h, w = h // 2, w // 2
            in_c = width
        self.features = nn.Sequential(*layers)
        self.feature_map_shape = (width, h, w)
        self.feature_dim = width * h * w
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, width, h, w)``: output of the last block, including its pooling."""
        return self.features(x)

    def extra_repr(self) -> str:
        return (
            f"channels={self.in_channels}, num_classes={self.num_classes}, image_size={self.image_size}, "
            f"width={self.width}, depth={self.depth}, norm={self.norm!r}, act={self.act!r}, pooling={self.pooling!r}"
        )
