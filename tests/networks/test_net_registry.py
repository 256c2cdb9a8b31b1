"""Registry: names, normalisation, overrides and error messages."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_dd.networks import (
    NETWORK_ALIASES,
    NETWORK_NAMES,
    ConvNet,
    ResNet18,
    create_network,
    resolve_network_name,
)

EXPECTED_NAMES = {
    "convnet",
    *(f"convnet_d{d}" for d in range(1, 6)),
    "convnet_w32",
    "convnet_w64",
    "convnet_w256",
    "convnet_bn",
    "convnet_ln",
    "convnet_gn",
    "convnet_nn",
    "convnet_mp",
    "convnet_nopool",
    "lenet",
    "alexnet",
    "alexnet_bn",
    "vgg11",
    "vgg11_bn",
    "resnet18",
    "resnet18_bn",
    "mlp",
}


def test_names() -> None:
    assert set(NETWORK_NAMES) == EXPECTED_NAMES
    assert len(NETWORK_NAMES) == len(EXPECTED_NAMES)
    assert all(n == n.lower() for n in NETWORK_NAMES)


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("ConvNet", "convnet"),
        ("ConvNetD4", "convnet_d4"),
        ("convnet-d4", "convnet_d4"),
        ("CONVNET_W256", "convnet_w256"),
        ("ResNet18BN", "resnet18_bn"),
        ("resnet-18_bn", "resnet18_bn"),
        ("VGG11BN", "vgg11_bn"),
        ("AlexNetBN", "alexnet_bn"),
        ("LeNet", "lenet"),
        ("MLP", "mlp"),
        ("ConvNetNN", "convnet_nn"),
        ("ConvNetMP", "convnet_mp"),
        ("ConvNetNP", "convnet_np"),
    ],
)
def test_name_normalisation(spelling: str, canonical: str) -> None:
    assert resolve_network_name(spelling) == canonical


@pytest.mark.parametrize(
    ("name", "attrs"),
    [
        ("convnet", {"width": 128, "depth": 3, "norm": "instancenorm", "act": "relu", "pooling": "avgpooling"}),
        ("ConvNetD1", {"depth": 1}),
        ("ConvNetD5", {"depth": 5}),
        ("convnet_w32", {"width": 32}),
        ("convnet_w64", {"width": 64}),
        ("convnet_w256", {"width": 256}),
        ("convnet_bn", {"norm": "batchnorm"}),
        ("convnet_ln", {"norm": "layernorm"}),
        ("convnet_gn", {"norm": "groupnorm"}),
        ("convnet_nn", {"norm": "none"}),
        ("convnet_mp", {"pooling": "maxpooling"}),
        ("convnet_nopool", {"pooling": "none"}),
        ("ConvNetNP", {"pooling": "none"}),
        ("ConvNetAS", {"act": "sigmoid"}),
        ("ConvNetASwishBN", {"act": "swish", "norm": "batchnorm"}),
    ],
)
def test_convnet_presets(name: str, attrs: dict) -> None:
    net = create_network(name, 3, 10, (32, 32))
    assert isinstance(net, ConvNet)
    for key, value in attrs.items():
        assert getattr(net, key) == value


def test_aliases_resolve_to_convnets() -> None:
    for alias in NETWORK_ALIASES:
        assert isinstance(create_network(alias, 1, 10, 28, width=8), ConvNet)


def test_overrides_apply_and_win_over_preset() -> None:
    net = create_network("convnet_d4", 3, 10, 32, depth=2, width=16, norm="batchnorm", act="gelu", pooling="maxpooling")
    assert (net.depth, net.width, net.norm, net.act, net.pooling) == (2, 16, "batchnorm", "gelu", "maxpooling")
    assert net.feature_dim == 16 * 8 * 8


def test_overrides_on_other_family_raise_type_error() -> None:
    with pytest.raises(TypeError, match=r"'resnet18'.*width"):
        create_network("resnet18", 3, 10, 32, width=64)


def test_unknown_override_raises_type_error() -> None:
    with pytest.raises(TypeError, match=r"colour.*width, depth, norm, act, pooling"):
        create_network("convnet", 3, 10, 32, colour="red")


def test_unknown_name_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"'resnet50'.*convnet.*resnet18_bn.*mlp") as info:
        create_network("resnet50", 3, 10, 32)
    assert all(name in str(info.value) for name in NETWORK_NAMES)


def test_bad_convnet_option_via_registry() -> None:
    with pytest.raises(ValueError, match=r"'foo'.*instancenorm"):
        create_network("convnet", 3, 10, 32, norm="foo")


def test_image_size_forms() -> None:
    a = create_network("resnet18", 3, 10, 32)
    b = create_network("resnet18", 3, 10, (32, 32))
    assert isinstance(a, ResNet18) and a.image_size == b.image_size == (32, 32)
    assert isinstance(a, nn.Module)
    with pytest.raises(ValueError, match="image_size"):
        create_network("convnet", 3, 10, (32, 32, 3))
    with pytest.raises(ValueError, match="positive"):
        create_network("convnet", 3, 10, 0)


@pytest.mark.parametrize("name", [n for n in NETWORK_NAMES if n != "mlp"])
def test_embed_from_map_of_feature_map_equals_embed(name: str) -> None:
    g = torch.Generator().manual_seed(0)
    net = create_network(name, 3, 10, (32, 32), generator=g).eval()
    x = torch.randn(2, 3, 32, 32, generator=g)
    torch.testing.assert_close(net.embed_from_map(net.feature_map(x)), net.embed(x))
