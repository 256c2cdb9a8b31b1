"""A first-in-first-out queue of networks that keep training: IDM's model queue (Zhao et al., CVPR 2023).

``uitrbn/IDM: IDM_cifar10.py`` keeps up to ``net_num`` randomly initialised ConvNets; every
``net_generate_interval`` iterations a fresh one is pushed (the oldest evicted when full), a few of them are
trained on real batches after every iteration, and each carries its own SGD optimiser and a running training
accuracy (``torchnet.meter.ClassErrorMeter``, in percent, reset periodically) that weights IDM's cross-entropy term.

:class:`NetworkQueue` is that queue, held outside the module tree (never registered submodules, see
:mod:`lightning_dd.networks.holder`). Its whole state -- every network's weights, its optimiser state, its meter and
the queue order -- round-trips through :meth:`NetworkQueue.state_dict` so that a resumed run continues exactly.
Pure torch: the networks are drawn with :func:`~lightning_dd.networks.reinitialize_` from the caller's generator.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lightning_dd.networks.init import reinitialize_

__all__ = ["NetworkQueue", "QueuedNetwork"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


@dataclass
class QueuedNetwork:
    """One network of the queue, its optimiser and its running training accuracy.

    Attributes:
        net: the network.
        optimizer: its optimiser (persists across the iterations the network trains in).
        serial: 0-based push count at which it entered the queue (a stable name for logs).
        correct, seen: top-1 hits and predictions counted since the last :meth:`reset_meter`.
    """

    net: nn.Module
    optimizer: torch.optim.Optimizer
    serial: int
    correct: int = 0
    seen: int = 0

    @property
    def accuracy_percent(self) -> float:
        """Running training accuracy in percent (``0.0`` before any prediction, as the reference's meter)."""
        return 100.0 * self.correct / self.seen if self.seen else 0.0

    def record(self, correct: int, seen: int) -> None:
        """Add ``correct`` hits out of ``seen`` predictions to the meter."""
        if correct < 0 or seen < 0 or correct > seen:
            raise ValueError(f"need 0 <= correct <= seen, got correct={correct}, seen={seen}")
        self.correct += int(correct)
        self.seen += int(seen)

    def reset_meter(self) -> None:
        self.correct = 0
        self.seen = 0


class NetworkQueue:
    """A FIFO of at most ``capacity`` networks, each a fresh random copy of ``template``.

    Args:
        template: the architecture; pushed networks are deep copies re-drawn from the push's generator (the
            template's own values are never used).
        make_optimizer: builds a network's optimiser from its parameters (IDM: SGD lr 0.01, momentum 0.9,
            weight decay 5e-4).
        capacity: the most networks held (IDM's ``net_num``, >= 1); a push into a full queue evicts the oldest.
    """

    def __init__(self, template: nn.Module, make_optimizer: OptimizerFactory, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity (net_num) must be an integer >= 1, got {capacity!r}")
        self.template = template
        self.make_optimizer = make_optimizer
        self.capacity = capacity
        self.entries: list[QueuedNetwork] = []
        self.pushed = 0  # networks pushed so far (serial of the next one)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> QueuedNetwork:
        return self.entries[index]

    def __iter__(self) -> Iterator[QueuedNetwork]:
        return iter(self.entries)

    def _new(self, serial: int) -> QueuedNetwork:
        param = next(self.template.parameters(), None)
        net = copy.deepcopy(self.template)
        if param is not None:
            net = net.to(param.device)
        return QueuedNetwork(net=net, optimizer=self.make_optimizer(net.parameters()), serial=serial)

    def push(self, generator: torch.Generator) -> QueuedNetwork:
        """Append a network drawn from ``generator`` (evicting the oldest when full); returns it."""
        entry = self._new(self.pushed)
        reinitialize_(entry.net, generator)
        entry.net.train()
        if len(self.entries) == self.capacity:
            self.entries.pop(0)
        self.entries.append(entry)
        self.pushed += 1
        return entry

    def pick(self, n: int, generator: torch.Generator) -> list[int]:
        """``min(n, len(self))`` distinct queue positions in random order (the reference's shuffle-and-take)."""
        if not self.entries:
            raise RuntimeError("the network queue is empty: push networks before picking")
        return [int(i) for i in torch.randperm(len(self.entries), generator=generator)[:n]]

    def reset_meters(self) -> None:
        for entry in self.entries:
            entry.reset_meter()

    def to(self, device: torch.device | str) -> NetworkQueue:
        """Move the template and every network (and so its optimiser's parameters) to ``device``."""
        device = torch.device(device)
        self.template.to(device)
        for entry in self.entries:
            entry.net.to(device)  # in place: the optimiser keeps pointing at the same parameters
            for state in entry.optimizer.state.values():
                for key, value in state.items():
                    if isinstance(value, torch.Tensor):
                        state[key] = value.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as CPU tensors: the order, weights, optimiser states, meters, push count."""
        return {
            "capacity": self.capacity,
            "pushed": self.pushed,
            "entries": [{"serial": e.serial, "correct": e.correct, "seen": e.seen,
                         "net": {k: v.detach().cpu().clone() for k, v in e.net.state_dict().items()},
                         "optimizer": _cpu(e.optimizer.state_dict())} for e in self.entries],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild the queue of :meth:`state_dict` (same template architecture) in place."""
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"the saved network queue holds up to {state['capacity']} networks, this one "
                             f"{self.capacity}: net_num must not change on a resume")
        entries = []
        for saved in state["entries"]:
            entry = self._new(int(saved["serial"]))
            entry.net.load_state_dict(saved["net"])
            entry.optimizer.load_state_dict(saved["optimizer"])  # casts the state to the parameters' device
            entry.correct, entry.seen = int(saved["correct"]), int(saved["seen"])
            entries.append(entry)
        self.entries = entries
        self.pushed = int(state["pushed"])


def _cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cpu(v) for v in value]
    return value
