"""Network registry: ``create_network(name, channels, num_classes, image_size, **overrides)``.

Names are matched case-insensitively with ``-`` and ``_`` ignored, so the reference spellings (``"ConvNetD4"``,
``"ResNet18BN"``, ``"VGG11BN"``) work as well as the canonical snake_case ones in :data:`NETWORK_NAMES`. A few
further reference ConvNet spellings (``"ConvNetNP"``, ``"ConvNetAS"``, ``"ConvNetASwishBN"``, ...) are accepted
as aliases (:data:`NETWORK_ALIASES`) but not listed in :data:`NETWORK_NAMES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

import torch

from lightning_dd.networks.convnet import ConvNet, DistillationNetwork
from lightning_dd.networks.init import reinitialize_
from lightning_dd.networks.zoo import MLP, VGG11, AlexNet, LeNet, ResNet18

__all__ = ["CONVNET_OVERRIDES", "NETWORK_ALIASES", "NETWORK_NAMES", "NetworkName", "create_network",
           "resolve_network_name"]

#: keyword arguments of :class:`ConvNet` that ``create_network`` accepts as ``overrides`` for convnet names.
CONVNET_OVERRIDES: tuple[str, ...] = ("width", "depth", "norm", "act", "pooling")

# canonical name -> ConvNet preset (applied on top of the defaults; explicit overrides win)
_CONVNET_PRESETS: dict[str, dict[str, Any]] = {
    "convnet": {},
    **{f"convnet_d{d}": {"depth": d} for d in range(1, 6)},
    "convnet_w32": {"width": 32},
    "convnet_w64": {"width": 64},
    "convnet_w256": {"width": 256},
    "convnet_bn": {"norm": "batchnorm"},
    "convnet_ln": {"norm": "layernorm"},
    "convnet_gn": {"norm": "groupnorm"},
    "convnet_nn": {"norm": "none"},
    "convnet_mp": {"pooling": "maxpooling"},
    "convnet_nopool": {"pooling": "none"},
}

_ZOO: dict[str, Callable[[int, int, Any], DistillationNetwork]] = {
    "lenet": lambda c, n, s: LeNet(c, n, s),
    "alexnet": lambda c, n, s: AlexNet(c, n, s),
    "alexnet_bn": lambda c, n, s: AlexNet(c, n, s, norm="batchnorm"),
    "vgg11": lambda c, n, s: VGG11(c, n, s),
    "vgg11_bn": lambda c, n, s: VGG11(c, n, s, norm="batchnorm"),
    "resnet18": lambda c, n, s: ResNet18(c, n, s),
    "resnet18_bn": lambda c, n, s: ResNet18(c, n, s, norm="batchnorm"),
    "mlp": lambda c, n, s: MLP(c, n, s),
}

#: the canonical network names accepted by :func:`create_network`.
NETWORK_NAMES: tuple[str, ...] = (*_CONVNET_PRESETS, *_ZOO)
#: the canonical network names, as a type (command-line choices); equals NETWORK_NAMES (checked below)
NetworkName = Literal[
    "convnet", "convnet_d1", "convnet_d2", "convnet_d3", "convnet_d4", "convnet_d5", "convnet_w32", "convnet_w64",
    "convnet_w256", "convnet_bn", "convnet_ln", "convnet_gn", "convnet_nn", "convnet_mp", "convnet_nopool", "lenet",
    "alexnet", "alexnet_bn", "vgg11", "vgg11_bn", "resnet18", "resnet18_bn", "mlp"
]
if get_args(NetworkName) != NETWORK_NAMES:  # one list, two spellings: keep them equal
    raise ImportError("NetworkName and NETWORK_NAMES differ")

#: other accepted spellings (VICO ``get_network`` names) -> the ConvNet preset they stand for.
NETWORK_ALIASES: dict[str, dict[str, Any]] = {
    "convnet_w128": {},
    "convnet_in": {},
    "convnet_ap": {},
    "convnet_ar": {},
    "convnet_np": {"pooling": "none"},
    "convnet_as": {"act": "sigmoid"},
    "convnet_al": {"act": "leakyrelu"},
    "convnet_aswish": {"act": "swish"},
    "convnet_aswish_bn": {"act": "swish", "norm": "batchnorm"},
}


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


_LOOKUP: dict[str, str] = {_key(n): n for n in (*NETWORK_NAMES, *NETWORK_ALIASES)}


def resolve_network_name(name: str) -> str:
    """Map any accepted spelling of a network name to its snake_case form (a canonical name or an alias).

    Raises:
        ValueError: ``name`` is not a known network (the message lists :data:`NETWORK_NAMES`).
    """
    if not isinstance(name, str) or _key(name) not in _LOOKUP:
        raise ValueError(f"unknown network {name!r}; known networks: {', '.join(NETWORK_NAMES)}")
    return _LOOKUP[_key(name)]


def create_network(
    name: str,
    channels: int,
    num_classes: int,
    image_size: tuple[int, int] | int | Sequence[int],
    generator: torch.Generator | None = None,
    **overrides: Any,
) -> DistillationNetwork:
    """Build network ``name`` for ``(B, channels, *image_size)`` inputs and ``num_classes`` logits.

    Args:
        name: one of :data:`NETWORK_NAMES` (case-insensitive, ``-``/``_`` ignored) or an alias.
        channels: input channels.
        num_classes: classifier outputs.
        image_size: ``(H, W)`` or ``H``.
        generator: when given, the weights are drawn from it (:func:`~lightning_dd.networks.reinitialize_`) and the
            global RNG is left untouched; otherwise PyTorch's default initialisation from the global RNG.
        **overrides: ``width``, ``depth``, ``norm``, ``act``, ``pooling`` for convnet-family names; they take
            precedence over the name's preset (``create_network("convnet_d4", ..., depth=2)`` has depth 2).

    Returns:
        A freshly initialised network with ``forward``, ``embed``, ``feature_map``, ``feature_dim``,
        ``num_classes`` and ``classifier``.

    Raises:
        ValueError: unknown ``name``, or a bad ``norm``/``act``/``pooling`` value.
        TypeError: ``overrides`` given for a non-convnet network, or an unknown override keyword.
    """
    if generator is not None:
        with torch.random.fork_rng(devices=[]):
            net = create_network(name, channels, num_classes, image_size, **overrides)
        return reinitialize_(net, generator)
    resolved = resolve_network_name(name)
    if resolved in _ZOO:
        if overrides:
            raise TypeError(
                f"network {name!r} takes no overrides (got {', '.join(sorted(overrides))}); "
                f"{', '.join(CONVNET_OVERRIDES)} apply to convnet-family networks only"
            )
        return _ZOO[resolved](channels, num_classes, image_size)
    unknown = sorted(set(overrides) - set(CONVNET_OVERRIDES))
    if unknown:
        raise TypeError(
            f"unexpected override(s) {', '.join(unknown)} for network {name!r}; allowed: {', '.join(CONVNET_OVERRIDES)}"
        )
    preset = _CONVNET_PRESETS[resolved] if resolved in _CONVNET_PRESETS else NETWORK_ALIASES[resolved]
    return ConvNet(channels, num_classes, image_size, **{**preset, **overrides})
