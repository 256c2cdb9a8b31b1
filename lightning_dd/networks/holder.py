"""A holder for the helper networks of a method: used, trained or frozen, but never registered submodules.

DM's random embedder, DC/DSA's inner network, IDC/IDM's networks trained on real data, proxies and experts are not
the method's learnable state (the synthetic images are). Registered as submodules they would bloat every checkpoint,
be broadcast and gradient-synchronised by DDP (whose unused-parameter check then fails, style.md pitfall 4) and be
cast by precision plugins. :class:`HelperNetworks` keeps them in a plain dict instead; a method that must resume
them exactly saves their state in its own ``on_save_checkpoint``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["HelperNetworks"]


class HelperNetworks:
    """Named helper networks, held outside the module tree.

    Example::

        self.helpers = HelperNetworks(embedder=create_network(...).requires_grad_(False))
        net = self.helpers.on(self.device)["embedder"]
    """

    def __init__(self, **networks: nn.Module) -> None:
        self._networks: dict[str, nn.Module] = {}
        for name, net in networks.items():
            self[name] = net

    def __setitem__(self, name: str, net: nn.Module) -> None:
        if not isinstance(net, nn.Module):
            raise TypeError(f"helper {name!r} must be an nn.Module, got {type(net).__name__}")
        self._networks[name] = net

    def __getitem__(self, name: str) -> nn.Module:
        try:
            return self._networks[name]
        except KeyError:
            raise KeyError(f"no helper network {name!r}; held: {sorted(self._networks)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._networks

    def __iter__(self) -> Iterator[str]:
        return iter(self._networks)

    def __len__(self) -> int:
        return len(self._networks)

    def on(self, device: torch.device | str) -> HelperNetworks:
        """Move every network to ``device`` (a no-op for those already there); returns ``self``."""
        device = torch.device(device)
        for name, net in self._networks.items():
            param = next(net.parameters(), None)
            if param is not None and param.device != device:
                self._networks[name] = net.to(device)
        return self

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """Every network's ``state_dict`` (CPU copies), for a method's own checkpoint entry."""
        return {name: {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
                for name, net in self._networks.items()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        """Restore what :meth:`state_dict` returned (networks of the same names and shapes)."""
        missing = set(self._networks) - set(state)
        if missing:
            raise KeyError(f"checkpoint lacks helper networks {sorted(missing)}")
        for name, net in self._networks.items():
            net.load_state_dict(state[name])
