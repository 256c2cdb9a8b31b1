"""reinitialize_: reproducibility, isolation from the global RNG, distributions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lightning_dd.networks import NETWORK_NAMES, create_network, reinitialize_


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _params(net: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def test_same_seed_identical_different_seed_different() -> None:
    net = create_network("convnet", 3, 10, 32, width=16)
    a = _params(reinitialize_(net, _gen(1)))
    b = _params(reinitialize_(net, _gen(1)))
    c = _params(reinitialize_(net, _gen(2)))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    weights = [i for i, p in enumerate(net.parameters()) if p.dim() > 1]  # conv and linear weights here
    assert weights and all(not torch.equal(a[i], c[i]) for i in weights)


def test_independent_of_prior_state_and_separate_instances() -> None:
    """The result only depends on the generator: a second net, different starting weights, same draw."""
    torch.manual_seed(123)
    n1 = create_network("alexnet_bn", 3, 10, 32)
    torch.manual_seed(456)
    n2 = create_network("alexnet_bn", 3, 10, 32)
    with torch.no_grad():
        n2.features[1].running_mean.add_(3.0)
    reinitialize_(n1, _gen(7))
    reinitialize_(n2, _gen(7))
    for x, y in zip(n1.state_dict().values(), n2.state_dict().values(), strict=True):
        assert torch.equal(x, y)


def test_global_rng_untouched() -> None:
    net = create_network("convnet_bn", 3, 10, 32, width=16)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    reinitialize_(net, _gen(3))
    assert torch.equal(torch.get_rng_state(), before)


def test_keeps_parameter_identity_and_grad_flag() -> None:
    net = create_network("lenet", 1, 10, 28)
    ids = [id(p) for p in net.parameters()]
    net.classifier.weight.requires_grad_(False)
    reinitialize_(net, _gen(0))
    assert ids == [id(p) for p in net.parameters()]
    assert not net.classifier.weight.requires_grad
    assert net.fc_1.weight.requires_grad


def test_matches_torch_default_init_bitwise() -> None:
    """For a CPU generator the draw equals nn.init.kaiming_uniform_(a=sqrt(5)) + uniform bias with that generator."""
    lin = nn.Linear(50, 7)
    reinitialize_(lin, _gen(11))
    g = _gen(11)
    w = torch.empty(7, 50)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)
    b = torch.empty(7).uniform_(-1 / math.sqrt(50), 1 / math.sqrt(50), generator=g)
    assert torch.equal(lin.weight, w) and torch.equal(lin.bias, b)


def test_distribution_bounds_mean_var() -> None:
    net = create_network("convnet", 3, 10, 32)
    reinitialize_(net, _gen(5))
    checked = 0
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            for p in (m.weight, m.bias):
                p = p.detach()
                assert p.abs().max() <= bound * (1 + 1e-6)
                if p.numel() >= 2_000:  # enough samples for tight empirical checks
                    n = p.numel()
                    assert p.max() > bound * (1 - 20 / n) and p.min() < -bound * (1 - 20 / n)
                    var = bound**2 / 3
                    assert abs(p.mean().item()) < 5 * math.sqrt(var / n)
                    # Var of the sample variance of U(-b, b): (b^4/5 - var^2) / n
                    assert abs(p.var().item() - var) < 5 * math.sqrt((bound**4 / 5 - var**2) / n)
                    checked += 1
    assert checked == 4  # the three conv weights and the classifier weight
    for m in net.modules():
        if isinstance(m, nn.GroupNorm):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.equal(m.bias, torch.zeros_like(m.bias))


def test_batchnorm_running_stats_reset() -> None:
    net = create_network("convnet_bn", 3, 10, 16, width=8)
    net.train()
    net(torch.randn(4, 3, 16, 16) * 5 + 2)
    bn = net.features[1]
    assert isinstance(bn, nn.BatchNorm2d) and bn.num_batches_tracked.item() == 1
    with torch.no_grad():
        bn.weight.fill_(3.0)
    reinitialize_(net, _gen(0))
    assert torch.equal(bn.running_mean, torch.zeros(8)) and torch.equal(bn.running_var, torch.ones(8))
    assert bn.num_batches_tracked.item() == 0
    assert torch.equal(bn.weight, torch.ones(8)) and torch.equal(bn.bias, torch.zeros(8))


@pytest.mark.parametrize("name", NETWORK_NAMES)
def test_every_network_reinitialises(name: str) -> None:
    net = create_network(name, 1, 10, 28)
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    before = [m.weight.detach().clone() for m in layers]
    reinitialize_(net, _gen(0))
    assert layers and all(not torch.equal(b, m.weight) for b, m in zip(before, layers, strict=True))
    after = _params(net)
    again = _params(reinitialize_(net, _gen(0)))
    assert all(torch.equal(x, y) for x, y in zip(after, again, strict=True))


class _Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(5))

    def reset_parameters(self) -> None:
        nn.init.normal_(self.scale)


class _NoReset(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(5))


def test_other_modules_use_reset_parameters_seeded_from_generator() -> None:
    net = nn.Sequential(nn.Linear(3, 3), _Custom())
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = _params(reinitialize_(net, _gen(9)))
    b = _params(reinitialize_(net, _gen(9)))
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[-1].abs().sum() > 0
    with pytest.raises(TypeError, match="_NoReset"):
        reinitialize_(nn.Sequential(_NoReset()), _gen(0))


def test_rejects_non_generator() -> None:
    with pytest.raises(TypeError, match="Generator"):
        reinitialize_(nn.Linear(2, 2), 0)  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_generator_cuda_network() -> None:
    cpu = create_network("convnet", 3, 10, 32, width=16)
    gpu = create_network("convnet", 3, 10, 32, width=16).cuda()
    cuda_state = torch.cuda.get_rng_state()
    reinitialize_(cpu, _gen(4))
    reinitialize_(gpu, _gen(4))
    assert torch.equal(torch.cuda.get_rng_state(), cuda_state)
    for x, y in zip(cpu.parameters(), gpu.parameters(), strict=True):
        assert y.is_cuda and torch.equal(x, y.cpu())
