"""NetworkQueue (IDM's model queue): FIFO growth and eviction, reproducible draws, meters, exact state round trip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_dd.networks import NetworkQueue, create_network


def _queue(capacity: int = 3) -> NetworkQueue:
    template = create_network("convnet_w32", 3, 4, (8, 8), generator=torch.Generator().manual_seed(0))
    return NetworkQueue(template, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4), capacity)


def _flat(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def _train_step(queue: NetworkQueue, index: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(6, 3, 8, 8, generator=g), torch.randint(0, 4, (6,), generator=g)
    entry = queue[index]
    loss = F.cross_entropy(entry.net(x), y)
    entry.optimizer.zero_grad()
    loss.backward()
    entry.optimizer.step()


def test_fifo_growth_and_eviction() -> None:
    queue = _queue(capacity=3)
    g = torch.Generator().manual_seed(1)
    first = queue.push(g)
    assert len(queue) == 1 and first.serial == 0
    for _ in range(4):
        queue.push(g)
    assert len(queue) == 3
    assert [e.serial for e in queue] == [2, 3, 4]  # the two oldest were evicted, order kept
    assert all(e is not first for e in queue)
    weights = [_flat(e.net) for e in queue]
    assert not torch.equal(weights[0], weights[1])  # every push is a fresh draw


def test_push_is_a_function_of_the_generator_and_never_uses_the_template_values() -> None:
    a, b = _queue(), _queue()
    with torch.no_grad():
        for p in b.template.parameters():
            p.add_(1.0)
    torch.manual_seed(123)  # the global RNG plays no part
    na = a.push(torch.Generator().manual_seed(7)).net
    torch.manual_seed(456)
    nb = b.push(torch.Generator().manual_seed(7)).net
    assert torch.equal(_flat(na), _flat(nb))
    assert na is not a.template and not torch.equal(_flat(na), _flat(a.template))


def test_pick_distinct_positions() -> None:
    queue = _queue(capacity=5)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        queue.push(g)
    picked = queue.pick(2, g)
    assert len(picked) == 2 and len(set(picked)) == 2 and all(0 <= i < 4 for i in picked)
    assert sorted(queue.pick(10, g)) == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="empty"):
        _queue().pick(1, g)


def test_meter_percent_and_reset() -> None:
    queue = _queue()
    entry = queue.push(torch.Generator().manual_seed(0))
    assert entry.accuracy_percent == 0.0  # the reference's meter reads 0 before any prediction
    entry.record(3, 4)
    entry.record(1, 4)
    assert entry.accuracy_percent == pytest.approx(50.0)
    queue.reset_meters()
    assert (entry.correct, entry.seen) == (0, 0)
    with pytest.raises(ValueError, match="correct <= seen"):
        entry.record(5, 4)


def test_capacity_is_validated() -> None:
    with pytest.raises(ValueError, match="net_num"):
        _queue(capacity=0)


def test_state_round_trip_continues_exactly() -> None:
    """Save mid-training (momentum buffers live), load into a fresh queue, continue both: identical weights."""
    queue = _queue(capacity=3)
    g = torch.Generator().manual_seed(3)
    for _ in range(4):
        queue.push(g)
    _train_step(queue, 0, seed=10)
    _train_step(queue, 2, seed=11)
    queue[1].record(7, 9)
    state = queue.state_dict()

    restored = _queue(capacity=3)
    restored.load_state_dict(state)
    assert [e.serial for e in restored] == [e.serial for e in queue]
    assert (restored[1].correct, restored[1].seen) == (7, 9) and restored.pushed == queue.pushed
    for q in (queue, restored):
        _train_step(q, 0, seed=20)
        _train_step(q, 2, seed=21)
    for a, b in zip(queue, restored, strict=True):
        assert torch.equal(_flat(a.net), _flat(b.net))
    # the next push draws the same network in both when the generator is restored too
    state_g = g.get_state()
    g2 = torch.Generator()
    g2.set_state(state_g)
    assert torch.equal(_flat(queue.push(g).net), _flat(restored.push(g2).net))


def test_capacity_change_on_resume_is_refused() -> None:
    queue = _queue(capacity=3)
    queue.push(torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="net_num must not change"):
        _queue(capacity=4).load_state_dict(queue.state_dict())
