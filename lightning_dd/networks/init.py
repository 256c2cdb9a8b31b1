"""Seeded re-initialisation of a network with PyTorch's default distributions.

Distillation methods (DC/DSA/DM/IDM...) draw a fresh random network every iteration. The reference code calls
``get_network`` each time and re-seeds the global RNG from the wall clock; here one allocated network is
re-drawn in place from an explicit :class:`torch.Generator`, so a run is reproducible from its seed and the
global RNG stream is left alone.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm, _NormBase
from torch.nn.modules.conv import _ConvNd

__all__ = ["has_batchnorm", "reinitialize_"]

_ModuleT = TypeVar("_ModuleT", bound=nn.Module)

_NORM_TYPES: tuple[type[nn.Module], ...] = (_NormBase, nn.GroupNorm, nn.LayerNorm)
# negative slope a = sqrt(5) of the default kaiming_uniform_ of nn.Linear / nn.ConvNd
_DEFAULT_GAIN = nn.init.calculate_gain("leaky_relu", math.sqrt(5))


def _uniform_(param: torch.Tensor, bound: float, generator: torch.Generator) -> None:
    """Fill ``param`` with U(-bound, bound) drawn on the generator's device, then copy it in."""
    draw_dtype = torch.promote_types(param.dtype, torch.float32)
    sample = torch.empty(param.shape, dtype=draw_dtype, device=generator.device)
    sample.uniform_(-bound, bound, generator=generator)
    param.copy_(sample)


def _reset_affine(module: _ConvNd | nn.Linear, generator: torch.Generator) -> None:
    """Conv / Linear default init: weight ~ kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)), same bound for bias."""
    weight = module.weight
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
    # same arithmetic as nn.init.kaiming_uniform_, so the draw is bit-identical to it for a CPU generator
    std = _DEFAULT_GAIN / math.sqrt(fan_in) if fan_in > 0 else 0.0
    _uniform_(weight, math.sqrt(3.0) * std, generator)
    bias = getattr(module, "bias", None)
    if bias is not None:
        _uniform_(bias, 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0, generator)


def _reset_norm(module: nn.Module) -> None:
    """Norm default init: weight 1, bias 0; BatchNorm-style running statistics reset."""
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    if weight is not None:
        weight.fill_(1.0)
    if bias is not None:
        bias.zero_()
    if isinstance(module, _NormBase) and module.track_running_stats:
        module.reset_running_stats()


def _reset_other(module: nn.Module, generator: torch.Generator) -> None:
    """Unknown module with own parameters: run its ``reset_parameters`` in a forked, generator-seeded RNG."""
    reset = getattr(module, "reset_parameters", None)
    if not callable(reset):
        raise TypeError(
            f"reinitialize_: cannot re-initialise {type(module).__name__}: it owns parameters but is not a "
            f"Conv/Linear/norm layer and has no reset_parameters()"
        )
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    devices = sorted({p.device.index or 0 for p in module.parameters(recurse=False) if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        # seed only the forked generators (torch.manual_seed would also reseed every other CUDA device)
        torch.default_generator.manual_seed(seed)
        for index in devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        reset()


@torch.no_grad()
def reinitialize_(net: _ModuleT, generator: torch.Generator) -> _ModuleT:
    """Re-draw every parameter of ``net`` in place from PyTorch's default init, using only ``generator``.

    * ``nn.Conv*d`` / ``nn.Linear`` (and subclasses): ``weight ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (the default
      ``kaiming_uniform_(a=sqrt(5))``), ``bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``;
    * BatchNorm / InstanceNorm / GroupNorm / LayerNorm: ``weight = 1``, ``bias = 0``, running statistics reset;
    * any other module owning parameters directly: its own ``reset_parameters()`` is run under
      :func:`torch.random.fork_rng` seeded from ``generator`` (the global RNG state is restored afterwards).

    Modules are visited in ``net.modules()`` order (registration order), weight before bias, so the same
    generator state always gives the same network. Values are drawn on ``generator.device`` (e.g. a CPU generator
    for a CUDA network) and copied into the parameters; parameters keep their identity, device, dtype and
    ``requires_grad``, so optimisers and references to them stay valid.

    Args:
        net: the network to re-initialise in place.
        generator: the only source of randomness.

    Returns:
        ``net``.
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"reinitialize_ needs a torch.Generator, got {type(generator).__name__}")
    for module in net.modules():
        if isinstance(module, (_ConvNd, nn.Linear)):
            _reset_affine(module, generator)
        elif isinstance(module, _NORM_TYPES):
            _reset_norm(module)
        elif next(module.parameters(recurse=False), None) is not None:
            _reset_other(module, generator)
    return net


def has_batchnorm(net: nn.Module) -> bool:
    """Whether ``net`` has a BatchNorm layer (whose batch statistics mix the images of a forward pass)."""
    return any(isinstance(m, _BatchNorm) for m in net.modules())
