"""Networks for dataset distillation: the ConvNet family and the cross-architecture zoo.

Every network maps ``(B, C, H, W)`` images to ``(B, num_classes)`` logits and exposes ``embed(x) -> (B,
feature_dim)`` (the input of its final ``classifier: nn.Linear``), ``feature_map(x) -> (B, c, h, w)`` (the last
spatial map; ``TypeError`` for :class:`MLP`) and the attributes ``feature_dim``, ``num_classes``, ``classifier``.

Build them by name with :func:`create_network` (see :data:`NETWORK_NAMES`) and re-draw their weights
reproducibly with :func:`reinitialize_`.
"""

from lightning_dd.networks.convnet import ACTIVATIONS, NORMS, POOLINGS, ConvNet, DistillationNetwork
from lightning_dd.networks.holder import HelperNetworks
from lightning_dd.networks.init import has_batchnorm, reinitialize_
from lightning_dd.networks.queue import NetworkQueue, QueuedNetwork
from lightning_dd.networks.registry import (
    CONVNET_OVERRIDES,
    NETWORK_ALIASES,
    NETWORK_NAMES,
    NetworkName,
    create_network,
    resolve_network_name,
)
from lightning_dd.networks.zoo import MLP, VGG11, AlexNet, BasicBlock, LeNet, ResNet18

__all__ = [
    "ACTIVATIONS",
    "CONVNET_OVERRIDES",
    "MLP",
    "NETWORK_ALIASES",
    "NETWORK_NAMES",
    "NORMS",
    "POOLINGS",
    "VGG11",
    "AlexNet",
    "BasicBlock",
    "ConvNet",
    "DistillationNetwork",
    "HelperNetworks",
    "LeNet",
    "NetworkName",
    "NetworkQueue",
    "QueuedNetwork",
    "ResNet18",
    "create_network",
    "has_batchnorm",
    "reinitialize_",
    "resolve_network_name",
]
