"""Cross-architecture evaluation networks: LeNet, AlexNet, VGG11, ResNet18, MLP.

These follow the small-image variants used by the dataset-distillation literature (VICO-UoE/DatasetCondensation
``networks.py``), written from their description. Differences from the reference, all of which only matter for
non-standard inputs: every flatten/classifier size is computed from ``image_size`` instead of being hard-coded for
32x32, and the 28x28-specific paddings (LeNet, VGG11) apply to one-channel 28x28 images only.

All networks implement :class:`~lightning_dd.networks.convnet.DistillationNetwork`: ``forward`` ``(B, C, H, W) ->
(B, num_classes)``, ``embed`` ``-> (B, feature_dim)`` (the input of ``classifier``), ``feature_map`` ``-> (B, c, h,
w)`` (the last spatial map; :class:`MLP` has none and raises ``TypeError``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lightning_dd.networks.convnet import DistillationNetwork, as_image_size

__all__ = ["MLP", "VGG11", "AlexNet", "BasicBlock", "LeNet", "ResNet18"]

ZOO_NORMS: tuple[str, ...] = ("instancenorm", "batchnorm")


def _conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _zoo_norm(norm: str, channels: int) -> nn.Module:
    """``"instancenorm"`` -> ``GroupNorm(C, C, affine=True)``, ``"batchnorm"`` -> ``BatchNorm2d(C)``."""
    if norm == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if norm == "batchnorm":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(ZOO_NORMS)}")


def _check_common(
    name: str, channels: int, num_classes: int, image_size: int | Sequence[int], norm: str | None = None
) -> tuple[int, int]:
    """Validate the constructor arguments shared by the zoo networks; returns ``(H, W)``."""
    hw = as_image_size(image_size)
    if channels <= 0 or num_classes <= 0:
        raise ValueError(f"{name}: channels and num_classes must be positive, got {channels}, {num_classes}")
    if norm is not None and norm not in ZOO_NORMS:
        raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(ZOO_NORMS)}")
    return hw


def _too_small(name: str, channels: int, hw: tuple[int, int], where: str) -> ValueError:
    return ValueError(f"{name}: image size {hw[0]}x{hw[1]} ({channels} channels) is too small: {where}")


class MLP(DistillationNetwork):
    """``flatten -> Linear(C*H*W, 128) -> ReLU -> Linear(128, 128) -> ReLU -> Linear(128, num_classes)``.

    Shapes: ``(B, C, H, W) -> (B, num_classes)``; ``embed`` ``(B, 128)``; no spatial feature map.
    """

    def __init__(self, channels: int, num_classes: int, image_size: int | Sequence[int] = (32, 32)) -> None:
        super().__init__()
        hw = _check_common("MLP", channels, num_classes, image_size)
        self.in_channels, self.num_classes, self.image_size = channels, num_classes, hw
        self.fc_1 = nn.Linear(channels * hw[0] * hw[1], 128)
        self.fc_2 = nn.Linear(128, 128)
        self.classifier = nn.Linear(128, num_classes)
        self.feature_dim = 128
        self.feature_map_shape = None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, 128)``: the second hidden layer's ReLU output."""
        return F.relu(self.fc_2(F.relu(self.fc_1(x.flatten(1)))))

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Not available: raises ``TypeError``."""
        raise TypeError("MLP has no spatial feature map (it flattens its input first); use embed(x) instead")

    def embed_from_map(self, maps: torch.Tensor) -> torch.Tensor:
        """Not available: raises ``TypeError`` (no spatial map)."""
        raise TypeError("MLP has no spatial feature map (it flattens its input first); use embed(x) instead")


class LeNet(DistillationNetwork):
    """LeNet-5: conv 6@5x5 -> ReLU -> maxpool 2 -> conv 16@5x5 -> ReLU -> maxpool 2 -> fc 120 -> fc 84 -> fc.

    The first conv has padding 2 for one-channel 28x28 images (so MNIST maps match 32x32 ones), else 0.
    Shapes at 3x32x32 / 1x28x28: ``feature_map`` ``(B, 16, 5, 5)``, ``embed`` ``(B, 84)`` (ReLU'd fc 84 output).
    """

    def __init__(self, channels: int, num_classes: int, image_size: int | Sequence[int] = (32, 32)) -> None:
        super().__init__()
        hw = _check_common("LeNet", channels, num_classes, image_size)
        self.in_channels, self.num_classes, self.image_size = channels, num_classes, hw
        pad = 2 if (channels == 1 and hw == (28, 28)) else 0
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=pad),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        h, w = hw
        for _ in range(2):
            h, w = _conv_out(h, 5, padding=pad), _conv_out(w, 5, padding=pad)
            pad = 0
            if min(h, w) < 2:
                raise _too_small("LeNet", channels, hw, "needs at least 16x16 (12x12 with 28x28 padding)")
            h, w = h // 2, w // 2
        self.feature_map_shape = (16, h, w)
        self.fc_1 = nn.Linear(16 * h * w, 120)
        self.fc_2 = nn.Linear(120, 84)
        self.classifier = nn.Linear(84, num_classes)
        self.feature_dim = 84

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, 16, h, w)``: output of the second conv block (after its max-pool)."""
        return self.features(x)


    def embed_from_map(self, maps: torch.Tensor) -> torch.Tensor:
        """``(B, 16, h, w) -> (B, 84)``: the two hidden fully connected layers."""
        return F.relu(self.fc_2(F.relu(self.fc_1(maps.flatten(1)))))


class AlexNet(DistillationNetwork):
    """The small-image AlexNet of the DC literature.

    ``conv 128@5x5 (pad 4 if one channel else 2) -> [norm] -> ReLU -> maxpool 2``,
    ``conv 192@5x5 pad 2 -> [norm] -> ReLU -> maxpool 2``, ``conv 256@3x3 -> [norm] -> ReLU``,
    ``conv 192@3x3 -> [norm] -> ReLU``, ``conv 192@3x3 -> [norm] -> ReLU -> maxpool 2``, ``flatten -> Linear``.
    ``norm=None`` (the reference ``AlexNet``) has no normalisation; ``norm="batchnorm"`` (``AlexNetBN``) puts a
    ``BatchNorm2d`` after every conv; ``"instancenorm"`` (``GroupNorm(C, C)``) is also accepted.

    Shapes at 3x32x32 / 1x28x28: ``feature_map`` ``(B, 192, 4, 4)``, ``embed`` ``(B, 3072)`` (the flattened map).
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: int | Sequence[int] = (32, 32),
        norm: str | None = None,
    ) -> None:
        super().__init__()
        hw = _check_common("AlexNet", channels, num_classes, image_size)
        if norm is not None and norm not in ZOO_NORMS:
            raise ValueError(f"unknown norm {norm!r}; allowed: None, {', '.join(ZOO_NORMS)}")
        self.in_channels, self.num_classes, self.image_size, self.norm = channels, num_classes, hw, norm
        # (out_channels, kernel, padding, max-pool after)
        spec = [
            (128, 5, 4 if channels == 1 else 2, True),
            (192, 5, 2, True),
            (256, 3, 1, False),
            (192, 3, 1, False),
            (192, 3, 1, True),
        ]
        layers: list[nn.Module] = []
        in_c, (h, w) = channels, hw
        for out_c, k, pad, pool in spec:
            layers.append(nn.Conv2d(in_c, out_c, kernel_size=k, padding=pad))
            if norm is not None:
                layers.append(_zoo_norm(norm, out_c))
            layers.append(nn.ReLU())
            h, w = _conv_out(h, k, padding=pad), _conv_out(w, k, padding=pad)
            if pool:
                if min(h, w) < 2:
                    raise _too_small("AlexNet", channels, hw, "three 2x2 max-pools need at least 8x8")
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                h, w = h // 2, w // 2
            in_c = out_c
        self.features = nn.Sequential(*layers)
        self.feature_map_shape = (192, h, w)
        self.feature_dim = 192 * h * w
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, 192, h, w)``: output of the last conv block (after its max-pool)."""
        return self.features(x)



VGG11_CFG: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(DistillationNetwork):
    """VGG11 for small images: cfg ``[64,M,128,M,256,256,M,512,512,M,512,512,M]`` of conv3x3 -> norm -> ReLU
    (``M`` = 2x2 max-pool), then ``flatten -> Linear(512*(H/32)*(W/32), num_classes)``.

    The first conv has padding 3 for one-channel 28x28 images (28 -> 32), else 1. ``norm`` is
    ``"instancenorm"`` (``GroupNorm(C, C)``, the reference default) or ``"batchnorm"`` (``VGG11BN``).
    Shapes at 3x32x32 / 1x28x28: ``feature_map`` ``(B, 512, 1, 1)``, ``embed`` ``(B, 512)``; 3x64x64: 2048.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: int | Sequence[int] = (32, 32),
        norm: str = "instancenorm",
    ) -> None:
        super().__init__()
        hw = _check_common("VGG11", channels, num_classes, image_size, norm)
        self.in_channels, self.num_classes, self.image_size, self.norm = channels, num_classes, hw, norm
        layers: list[nn.Module] = []
        in_c, (h, w) = channels, hw
        for i, item in enumerate(VGG11_CFG):
            if item == "M":
                if min(h, w) < 2:
                    raise _too_small("VGG11", channels, hw, "five 2x2 max-pools need at least 32x32")
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                h, w = h // 2, w // 2
                continue
            out_c = int(item)
            pad = 3 if (i == 0 and channels == 1 and hw == (28, 28)) else 1
            layers += [nn.Conv2d(in_c, out_c, kernel_size=3, padding=pad), _zoo_norm(norm, out_c), nn.ReLU()]
            h, w = _conv_out(h, 3, padding=pad), _conv_out(w, 3, padding=pad)
            in_c = out_c
        self.features = nn.Sequential(*layers)
        self.feature_map_shape = (512, h, w)
        self.feature_dim = 512 * h * w
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, 512, H/32, W/32)``: output of the last max-pool."""
        return self.features(x)



class BasicBlock(nn.Module):
    """ResNet basic block: ``relu(norm(conv3x3(relu(norm(conv3x3_s(x))))) + shortcut(x))``.

    The shortcut is ``conv1x1_s -> norm`` when the stride or channel count changes, else the identity.
    Shapes: ``(B, in_planes, H, W) -> (B, planes, ceil(H/stride), ceil(W/stride))``.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, norm: str = "instancenorm") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = _zoo_norm(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = _zoo_norm(norm, planes)
        self.shortcut: nn.Module
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False), _zoo_norm(norm, planes)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(DistillationNetwork):
    """CIFAR-style ResNet18: conv3x3 (stride 1, no max-pool) -> norm -> ReLU -> 4 stages of 2 basic blocks
    (64, 128/2, 256/2, 512/2) -> ``avg_pool2d(., 4)`` -> flatten -> ``Linear``.

    ``norm`` is ``"instancenorm"`` (``GroupNorm(C, C)``, the reference default) or ``"batchnorm"``
    (``ResNet18BN``). Convolutions have no bias. Shapes: ``feature_map`` is the layer4 output, ``(B, 512, 4, 4)``
    at 32x32 and 1x28x28; ``embed`` is its 4x4 average pool flattened: 512-d at 32x32, 2048-d at 64x64 (2x2
    pooled map), ``512*(h4//4)*(w4//4)`` in general.
    """

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: int | Sequence[int] = (32, 32),
        norm: str = "instancenorm",
    ) -> None:
        super().__init__()
        hw = _check_common("ResNet18", channels, num_classes, image_size, norm)
        self.in_channels, self.num_classes, self.image_size, self.norm = channels, num_classes, hw, norm
        self.conv1 = nn.Conv2d(channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = _zoo_norm(norm, 64)
        in_planes = 64
        h, w = hw
        stages = []
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks = [BasicBlock(in_planes, planes, stride, norm), BasicBlock(planes, planes, 1, norm)]
            stages.append(nn.Sequential(*blocks))
            in_planes = planes
            h, w = _conv_out(h, 3, stride, 1), _conv_out(w, 3, stride, 1)
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        if min(h, w) < 4:
            raise _too_small("ResNet18", channels, hw, f"layer4 map {h}x{w} is smaller than the 4x4 average pool")
        self.feature_map_shape = (512, h, w)
        self.feature_dim = 512 * (h // 4) * (w // 4)
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, 512, h4, w4)``: the (ReLU'd) layer4 output, ``h4 = ceil(H/8)``."""
        out = F.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(out))))


    def embed_from_map(self, maps: torch.Tensor) -> torch.Tensor:
        """``(B, 512, h4, w4) -> (B, feature_dim)``: ``flatten(avg_pool2d(maps, 4))``."""
        return self._flatten_checked(F.avg_pool2d(maps, 4))
