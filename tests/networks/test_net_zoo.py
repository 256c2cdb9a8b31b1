"""Zoo networks and the shared contract, checked for every registered name."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightning_dd.networks import MLP, NETWORK_NAMES, VGG11, AlexNet, LeNet, ResNet18, create_network

# (channels, size) -> expected feature_dim for the non-convnet zoo
ZOO_FEATURE_DIMS = {
    "lenet": {(1, 28): 84, (3, 32): 84, (3, 64): 84},
    "alexnet": {(1, 28): 3072, (3, 32): 3072, (3, 64): 12288},
    "alexnet_bn": {(1, 28): 3072, (3, 32): 3072, (3, 64): 12288},
    "vgg11": {(1, 28): 512, (3, 32): 512, (3, 64): 2048},
    "vgg11_bn": {(1, 28): 512, (3, 32): 512, (3, 64): 2048},
    "resnet18": {(1, 28): 512, (3, 32): 512, (3, 64): 2048},
    "resnet18_bn": {(1, 28): 512, (3, 32): 512, (3, 64): 2048},
    "mlp": {(1, 28): 128, (3, 32): 128, (3, 64): 128},
}

CASES = [(name, c, s) for name in NETWORK_NAMES for (c, s) in ((1, 28), (3, 32), (3, 64))]
# 1x8x8: every convnet whose depth fits (8 >= 2**depth), plus the MLP
CASES += [(n, 1, 8) for n in NETWORK_NAMES if n.startswith("convnet") and n not in ("convnet_d4", "convnet_d5")]
CASES += [("mlp", 1, 8)]


@pytest.mark.parametrize(("name", "channels", "size"), CASES)
def test_contract_shapes(name: str, channels: int, size: int) -> None:
    torch.manual_seed(0)
    net = create_network(name, channels, 7, size)
    assert net.num_classes == 7
    assert isinstance(net.classifier, nn.Linear)
    assert net.classifier.in_features == net.feature_dim and net.classifier.out_features == 7
    if name in ZOO_FEATURE_DIMS and (channels, size) in ZOO_FEATURE_DIMS[name]:
        assert net.feature_dim == ZOO_FEATURE_DIMS[name][(channels, size)]
    x = torch.randn(2 if size <= 32 else 1, channels, size, size)
    seen: list[torch.Tensor] = []
    net.classifier.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0]))
    with torch.no_grad():
        logits = net(x)
        emb = net.embed(x)
    assert logits.shape == (x.shape[0], 7)
    assert emb.shape == (x.shape[0], net.feature_dim)
    # embed is exactly what forward feeds the classifier, and classifier(embed(x)) == forward(x)
    torch.testing.assert_close(seen[0], emb)
    torch.testing.assert_close(net.classifier(emb), logits)
    if name == "mlp":
        with pytest.raises(TypeError, match="MLP has no spatial"):
            net.feature_map(x)
        assert net.feature_map_shape is None
    else:
        with torch.no_grad():
            fmap = net.feature_map(x)
        assert fmap.shape == (x.shape[0], *net.feature_map_shape)


@pytest.mark.parametrize("depth", [4, 5])
def test_convnet_deep_too_small(depth: int) -> None:
    with pytest.raises(ValueError, match=rf"8x8.*depth-{depth}"):
        create_network(f"convnet_d{depth}", 1, 10, 8)


def test_lenet_layers() -> None:
    mnist = LeNet(1, 10, 28)
    convs = [m for m in mnist.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [(6, (5, 5), (2, 2)), (16, (5, 5), (0, 0))]
    assert [m.out_features for m in mnist.modules() if isinstance(m, nn.Linear)] == [120, 84, 10]
    assert mnist.fc_1.in_features == 16 * 5 * 5
    assert LeNet(3, 10, 32).features[0].padding == (0, 0)


def test_alexnet_layers_and_norm_placement() -> None:
    plain = AlexNet(3, 10, 32)
    convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.padding[0]) for c in convs] == [
        (128, 5, 2),
        (192, 5, 2),
        (256, 3, 1),
        (192, 3, 1),
        (192, 3, 1),
    ]
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in plain.modules())
    assert plain.classifier.in_features == 192 * 4 * 4
    assert AlexNet(1, 10, 28).features[0].padding == (4, 4)
    bn = create_network("alexnet_bn", 3, 10, 32)
    kinds = [type(m) for m in bn.features]
    # BatchNorm directly after every conv, before its ReLU
    for i, k in enumerate(kinds):
        if k is nn.Conv2d:
            assert kinds[i + 1] is nn.BatchNorm2d and kinds[i + 2] is nn.ReLU
    assert kinds.count(nn.BatchNorm2d) == 5 and kinds.count(nn.MaxPool2d) == 3


def test_vgg11_layers() -> None:
    net = VGG11(3, 10, 32)
    widths = [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [64, 128, 256, 256, 512, 512, 512, 512]
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 5
    gns = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert len(gns) == 8 and all(g.num_groups == g.num_channels for g in gns)
    assert VGG11(1, 10, 28).features[0].padding == (3, 3)
    assert net.features[0].padding == (1, 1)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in VGG11(3, 10, 32, norm="batchnorm").modules()) == 8


def test_resnet18_structure() -> None:
    net = ResNet18(3, 10, 32)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1) and net.conv1.bias is None
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    assert all(len(layer) == 2 for layer in (net.layer1, net.layer2, net.layer3, net.layer4))
    gns = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert gns and all(g.num_groups == g.num_channels for g in gns)
    bn = ResNet18(1, 10, 28, norm="batchnorm")
    assert not any(isinstance(m, nn.GroupNorm) for m in bn.modules())
    assert bn.conv1.in_channels == 1
    # reference feature: ReLU'd layer4 -> avg_pool2d(., 4) -> flatten (non-negative)
    x = torch.randn(2, 3, 32, 32)
    emb = net.embed(x)
    torch.testing.assert_close(emb, nn.functional.avg_pool2d(net.feature_map(x), 4).flatten(1))
    assert (emb >= 0).all()


def test_mlp_layers() -> None:
    net = MLP(3, 10, 32)
    assert [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, nn.Linear)] == [
        (3072, 128),
        (128, 128),
        (128, 10),
    ]
    assert MLP(1, 10, 28).fc_1.in_features == 784


@pytest.mark.parametrize("name", ["lenet", "alexnet", "vgg11", "resnet18"])
def test_zoo_too_small_raises(name: str) -> None:
    with pytest.raises(ValueError, match="too small"):
        create_network(name, 3, 10, 4)


def test_resnet18_state_dict_layout_matches_reference_naming() -> None:
    """Keys follow the reference layout (conv1/bn1/layerN.i.{conv,bn}{1,2}/shortcut.{0,1}/classifier)."""
    keys = set(ResNet18(3, 10, 32).state_dict())
    assert {"conv1.weight", "bn1.weight", "bn1.bias", "classifier.weight", "classifier.bias"} <= keys
    for layer in (2, 3, 4):
        assert {f"layer{layer}.0.shortcut.0.weight", f"layer{layer}.0.shortcut.1.weight"} <= keys
    assert not any(k.startswith(("layer1.0.shortcut", "layer2.1.shortcut")) for k in keys)
    assert {"layer4.1.conv2.weight", "layer4.1.bn2.bias"} <= keys
    assert len([k for k in keys if k.endswith("weight")]) == 1 + 1 + 4 * 2 * 4 + 3 * 2 + 1
