"""ConvNet: shapes, feature dims, parameter count, 28x28 padding, options and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_dd.networks import ACTIVATIONS, NORMS, POOLINGS, ConvNet


@pytest.mark.parametrize(
    ("channels", "size", "depth", "feature_dim", "map_hw"),
    [
        (3, 32, 3, 2048, 4),
        (3, 64, 3, 8192, 8),
        (3, 64, 4, 2048, 4),
        (1, 28, 3, 2048, 4),
        (1, 8, 3, 128, 1),
        (3, 8, 3, 128, 1),
    ],
)
def test_feature_dims_and_shapes(channels: int, size: int, depth: int, feature_dim: int, map_hw: int) -> None:
    net = ConvNet(channels, 10, (size, size), depth=depth)
    assert net.feature_dim == feature_dim
    assert net.feature_map_shape == (128, map_hw, map_hw)
    x = torch.randn(2, channels, size, size)
    assert net.feature_map(x).shape == (2, 128, map_hw, map_hw)
    assert net.embed(x).shape == (2, feature_dim)
    assert net(x).shape == (2, 10)
    assert isinstance(net.classifier, nn.Linear) and net.classifier.in_features == feature_dim


def test_param_count_convnet3_cifar10() -> None:
    c, w, k, n = 3, 128, 3, 10
    conv = lambda cin: cin * w * k * k + w  # noqa: E731 - weight + bias
    norm = 2 * w  # GroupNorm(C, C, affine): weight + bias
    fc = (w * 4 * 4) * n + n
    expected = conv(c) + norm + 2 * (conv(w) + norm) + fc
    assert expected == 320_010
    net = ConvNet(c, n, 32)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_default_layers_match_reference() -> None:
    net = ConvNet(3, 10, 32)
    kinds = [type(m) for m in net.features]
    assert kinds == [nn.Conv2d, nn.GroupNorm, nn.ReLU, nn.AvgPool2d] * 3
    gn = net.features[1]
    assert isinstance(gn, nn.GroupNorm)
    assert gn.num_groups == gn.num_channels == 128 and gn.affine


def test_28x28_one_channel_padding() -> None:
    net = ConvNet(1, 10, 28)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].padding == (3, 3)
    assert all(c.padding == (1, 1) for c in convs[1:])
    # one-channel 32x32 and three-channel 28x28 images get the ordinary padding
    assert ConvNet(1, 10, 32).features[0].padding == (1, 1)
    three = ConvNet(3, 10, 28)
    assert three.features[0].padding == (1, 1)
    assert three.feature_dim == 128 * 3 * 3


def test_non_square_image() -> None:
    net = ConvNet(3, 5, (32, 64))
    x = torch.randn(2, 3, 32, 64)
    assert net.feature_map(x).shape == (2, 128, 4, 8)
    assert net(x).shape == (2, 5)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_norms_and_poolings(norm: str, pooling: str) -> None:
    net = ConvNet(3, 4, 16, width=8, depth=2, norm=norm, pooling=pooling)
    x = torch.randn(2, 3, 16, 16)
    hw = 4 if pooling != "none" else 16
    assert net.feature_map(x).shape == (2, 8, hw, hw)
    assert net.feature_dim == 8 * hw * hw
    torch.testing.assert_close(net.classifier(net.embed(x)), net(x))
    expected = {
        "instancenorm": nn.GroupNorm,
        "batchnorm": nn.BatchNorm2d,
        "layernorm": nn.LayerNorm,
        "groupnorm": nn.GroupNorm,
    }
    norms = [m for m in net.features if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d, nn.LayerNorm))]
    if norm == "none":
        assert norms == []
    else:
        assert len(norms) == 2 and all(type(m) is expected[norm] for m in norms)
    if norm == "layernorm":
        assert norms[0].normalized_shape == (8, 16, 16)
        assert norms[1].normalized_shape == ((8, 8, 8) if pooling != "none" else (8, 16, 16))
    if norm == "groupnorm":
        assert norms[0].num_groups == 4
    if norm == "instancenorm":
        assert norms[0].num_groups == 8


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activations(act: str) -> None:
    net = ConvNet(3, 4, 8, width=8, depth=1, act=act)
    x = torch.randn(2, 3, 8, 8)
    assert net(x).shape == (2, 4)
    expected = {
        "relu": nn.ReLU,
        "leakyrelu": nn.LeakyReLU,
        "sigmoid": nn.Sigmoid,
        "swish": nn.SiLU,
        "silu": nn.SiLU,
        "gelu": nn.GELU,
    }[act]
    acts = [m for m in net.features if isinstance(m, expected)]
    assert len(acts) == 1
    if act == "leakyrelu":
        assert acts[0].negative_slope == 0.01


def test_too_small_image_raises() -> None:
    with pytest.raises(ValueError, match=r"8x8.*depth-4"):
        ConvNet(1, 10, 8, depth=4)
    # without pooling any size works
    assert ConvNet(1, 10, 8, depth=4, pooling="none").feature_dim == 128 * 8 * 8
    # 28x28 one-channel images are padded to 32x32, so depth 5 fits
    assert ConvNet(1, 10, 28, depth=5).feature_dim == 128


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"norm": "foonorm"}, r"'foonorm'.*instancenorm.*batchnorm.*layernorm.*groupnorm.*none"),
        ({"act": "tanh"}, r"'tanh'.*relu.*leakyrelu.*sigmoid.*swish.*gelu"),
        ({"pooling": "sum"}, r"'sum'.*avgpooling.*maxpooling.*none"),
        ({"depth": 0}, r"depth"),
    ],
)
def test_bad_options_raise(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        ConvNet(3, 10, 32, **kwargs)


def test_wrong_input_size_message() -> None:
    net = ConvNet(3, 10, 32, width=8)
    with pytest.raises(ValueError, match=r"built for \(B, 3, 32, 32\)"):
        net.embed(torch.randn(1, 3, 64, 64))


def test_gradients_flow_to_input() -> None:
    """Distillation optimises the images: d loss / d x must exist (incl. second order for gradient matching)."""
    net = ConvNet(3, 4, 8, width=8, depth=2)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    loss = nn.functional.cross_entropy(net(x), torch.tensor([0, 1]))
    grads = torch.autograd.grad(loss, list(net.parameters()), create_graph=True)
    match = sum(g.pow(2).sum() for g in grads)
    (gx,) = torch.autograd.grad(match, x)
    assert gx.shape == x.shape and torch.isfinite(gx).all() and gx.abs().sum() > 0
