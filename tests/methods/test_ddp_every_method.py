"""Every method under real DDP (``ddp_spawn``, 2 processes, gloo on CPU): after several iterations the synthetic
images, and the helper networks that must agree (IDC's network, IDM's queue), are identical on both ranks, while
the ranks sampled different real images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from tests.helpers import quiet_trainer
from tests.methods.test_precision_every_method import METHODS, experts  # noqa: F401  (the module fixture)


def helper_parameters(module: L.LightningModule) -> torch.Tensor:
    """Flat parameters of the method's long-lived helper networks (empty for methods without)."""
    nets: list[torch.nn.Module] = []
    queue = getattr(module, "queue", None)
    if queue is not None:
        nets += [entry.net for entry in queue]
    helpers = getattr(module, "helpers", None)
    if helpers is not None and "net" in helpers:
        nets.append(helpers["net"])
    params = [p.detach().flatten() for net in nets for p in net.parameters()]
    return torch.cat(params) if params else torch.zeros(1)


class CompareRanks(L.Callback):
    """At the end of the fit, rank 0 writes the largest difference between the ranks' tensors to ``out``."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.first_real: torch.Tensor | None = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.first_real is None:
            real = batch[0][: min(64, batch[0].shape[0])].float().flatten()
            self.first_real = real.clone() if real.numel() else torch.zeros(1)  # MTT: empty batches

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert self.first_real is not None
        tensors = {"images": pl_module.synthetic.images.detach(),  # type: ignore[union-attr]
                   "helpers": helper_parameters(pl_module), "real": self.first_real}
        gathered = {k: trainer.strategy.all_gather(v) for k, v in tensors.items()}
        if trainer.is_global_zero:
            diff = {k: float((g[0] - g[1]).abs().max()) for k, g in gathered.items()}
            torch.save({**diff, "helper_count": tensors["helpers"].numel()}, self.out)
        trainer.strategy.barrier()  # both ranks leave together


@pytest.mark.slow  # rank 1 sometimes aborts at process exit (SIGABRT, "terminate called without an active
# exception") after the checks passed; kept out of CI until that is found (run with -m slow)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_ranks_agree_on_images_and_helper_networks(name: str, experts: Path, tmp_path: Path) -> None:  # noqa: F811
    build, data, steps = METHODS[name]
    out = tmp_path / "diff.pt"
    trainer = quiet_trainer(tmp_path, max_steps=2 * steps, strategy="ddp_spawn", devices=2,
                            callbacks=[CompareRanks(out)])
    trainer.fit(build(experts), data())
    diff = torch.load(out)
    assert diff["images"] == 0.0, diff
    assert diff["helpers"] == 0.0, diff
    if name in ("idc", "idm"):
        assert diff["helper_count"] > 1  # the check above compared real networks
    if name != "mtt":  # MTT reads no real batch
        assert diff["real"] > 0, diff  # each rank sampled its own real images
