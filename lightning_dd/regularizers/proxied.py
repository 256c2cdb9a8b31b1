"""Shared machinery of regularizers that use a pool of pretrained proxy networks."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightning_dd.pretrained import ProxyPool
from lightning_dd.regularizers.base import Regularizer, RegularizerContext
from lightning_dd.seeding import STREAM_PROXY_CHOICE, make_generator


class ProxyRegularizer(Regularizer):
    """A regularizer that samples one frozen proxy per step from a :class:`~lightning_dd.pretrained.ProxyPool`.

    The pool file is read once, on the first step, onto the images' device, and checked against the run's dataset,
    resolution and normalisation. The proxy choice uses the regularizer's own generator (seeded from the run seed),
    so attaching a regularizer — even with weight 0 — does not change the method's own random stream.

    Args:
        pool: path of a pool written by ``lightning-dd pretrain`` (or a loaded :class:`ProxyPool`).
        weights: term name -> weight.
        every_n_steps: compute the terms every N iterations only (cost control; 1 = every iteration).
    """

    def __init__(self, pool: str | ProxyPool, weights: dict[str, float], every_n_steps: int = 1) -> None:
        super().__init__(weights, every_n_steps)
        self.pool_source = pool
        # plain attributes (not submodules): the pool's networks must not enter checkpoints or DDP
        self._pool: list[ProxyPool] = [pool] if isinstance(pool, ProxyPool) else []
        self._generator: torch.Generator | None = None
        self._checked = False

    def pool(self, ctx: RegularizerContext) -> ProxyPool:
        """The pool (its file read once, on the first step; networks are built per device when first drawn),
        checked once against the run's dataset, resolution, normalisation and image space."""
        if not self._pool:
            self._pool.append(ProxyPool.load(str(self.pool_source), ctx.synthetic.device))
        pool = self._pool[0]
        if not self._checked:
            pool.check_compatible(ctx.dataset, ctx.image_shape, ctx.mean, ctx.std, ctx.space,
                                  source=f"proxy pool {self.pool_source!s}")
            self._checked = True
        return pool

    def proxy(self, ctx: RegularizerContext) -> nn.Module:
        """This step's proxy, drawn from the regularizer's own generator, on the images' device."""
        if self._generator is None:
            self._generator = make_generator(ctx.seed, STREAM_PROXY_CHOICE)
        return self.pool(ctx).sample(self._generator, device=ctx.synthetic.device)

    def describe(self) -> dict[str, Any]:
        source = self.pool_source
        pool = (f"<in-memory ProxyPool: {len(source)} x {source.network} for {source.dataset}>"
                if isinstance(source, ProxyPool) else str(source))
        return {**super().describe(), "pool": pool}

    def state_for_checkpoint(self) -> dict[str, Any]:
        return {} if self._generator is None else {"generator": self._generator.get_state()}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self._generator = torch.Generator()
            self._generator.set_state(state["generator"])
