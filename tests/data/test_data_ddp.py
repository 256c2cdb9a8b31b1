"""RealDataModule under 2-process ddp_spawn (gloo, CPU): every rank draws its own class-balanced batches."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import Tensor

from lightning_dd.data import RealDataModule


class _RankRecorder(pl.LightningModule):
    """Saves per-image pixel sums of each rank's train batches to ``out/rank{r}.pt`` (spawned ranks share no memory)."""

    def __init__(self, out: str) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.out = out
        self.seen: list[tuple[int, int, Tensor]] = []

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, _ = batch
        self.seen.append((self.current_epoch, batch_idx, images.sum(dim=(1, 2, 3))))
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward((self.weight * images.mean()).sum())
        opt.step()

    def on_train_end(self) -> None:
        torch.save(self.seen, Path(self.out) / f"rank{self.global_rank}.pt")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_ddp_spawn_ranks_draw_their_own_batches(tmp_path: Path) -> None:
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_epochs=2,
        use_distributed_sampler=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
    )
    trainer.fit(_RankRecorder(str(tmp_path)), datamodule=RealDataModule(batch_real=2, iterations_per_epoch=3, seed=4))
    dm = RealDataModule(batch_real=2, iterations_per_epoch=3, seed=4)
    dm.setup()
    sampler = dm.train_dataloader().batch_sampler
    per_rank = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for rank, seen in enumerate(per_rank):
        assert [(e, b) for e, b, _ in seen] == [(e, b) for e in range(2) for b in range(3)]
        for epoch, b, sums in seen:
            idx = sampler.batch(b, epoch=epoch, rank=rank)
            torch.testing.assert_close(sums, dm.normalize(dm.store.images[idx]).sum(dim=(1, 2, 3)))
    assert not torch.equal(per_rank[0][0][2], per_rank[1][0][2])
