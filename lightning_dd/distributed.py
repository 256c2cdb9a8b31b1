"""Cross-rank helpers for the helper networks of distillation methods (no-ops outside a process group).

Under DDP the synthetic images are averaged by Lightning's DDP wrapper; helper networks that train on each rank's
own real images (IDM's queue, IDC's network) are not wrapped, so they call these to stay identical on every rank
while each rank contributes its share of the real images.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = ["average_gradients", "sum_across_ranks", "world_size"]


def world_size() -> int:
    """Processes in the default group (1 when there is none)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def average_gradients(module: nn.Module) -> None:
    """Replace every parameter's ``.grad`` by its mean over the ranks (one all-reduce of the flattened grads)."""
    world = world_size()
    if world == 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def sum_across_ranks(values: Tensor) -> Tensor:
    """``values`` summed over the ranks (a copy; ``values`` itself outside a process group)."""
    if world_size() == 1:
        return values
    total = values.clone()
    dist.all_reduce(total)
    return total
