"""Mixed precision for every method: a ``bf16-mixed`` fit (CPU autocast) keeps the synthetic images (and MTT's
learned step size) float32 master parameters, moves them, and stays finite; ``-true`` half precisions are refused
for every method before anything runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from lightning_dd.data import RealDataModule
from lightning_dd.methods import DC, DSA, IDC, IDM, MTT, DistillationModule
from tests.helpers import digits_data, digits_experts, quiet_trainer, tiny_dm

SHAPE: dict[str, Any] = {"ipc": 2, "num_classes": 10, "image_shape": (1, 8, 8), "artifact_path": ""}


class RecordStart(L.Callback):
    """The synthetic images when training starts (after their initialisation)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = pl_module.synthetic.images.detach().clone()  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def experts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return digits_experts(tmp_path_factory.mktemp("experts"))


#: name -> (build(experts dir), data, image steps for two iterations)
METHODS: dict[str, tuple[Callable[[Path], DistillationModule], Callable[[], RealDataModule], int]] = {
    "dm": (lambda _: tiny_dm(), lambda: digits_data(batch_real=8), 2),
    "dc": (lambda _: DC(**SHAPE, outer_loop=2, inner_loop=1, batch_train=8), lambda: digits_data(batch_real=8), 4),
    "dsa": (lambda _: DSA(**SHAPE, outer_loop=2, inner_loop=1, batch_train=8), lambda: digits_data(batch_real=8), 4),
    "idc": (lambda _: IDC(**SHAPE, inner_loop=2, n_data=32, batch_net=16),
            lambda: RealDataModule("digits", batch_real=8, space="pixels"), 20),
    "idm": (lambda _: IDM(**SHAPE, network="convnet_w32", model_train_steps=2, batch_train=16),
            lambda: digits_data(batch_real=8), 20),
    "mtt": (lambda e: MTT(**SHAPE, expert_buffer=str(e), syn_steps=3, expert_epochs=1, max_start_epoch=2,
                          lr_teacher=0.01, lr_lr=1e-5, batch_syn=8,
                          optimizer=lambda p: torch.optim.SGD(p, lr=10.0, momentum=0.5)),
            lambda: digits_data(batch_real=8), 2),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(METHODS))
def test_bf16_mixed_keeps_float32_masters_and_moves_them(name: str, experts: Path, tmp_path: Path) -> None:
    build, data, steps = METHODS[name]
    model = build(experts)
    fp32 = build(experts)
    record = RecordStart()
    quiet_trainer(tmp_path / "bf16", max_steps=steps, precision="bf16-mixed", callbacks=[record]).fit(model, data())
    quiet_trainer(tmp_path / "fp32", max_steps=steps).fit(fp32, data())
    images = model.synthetic.images
    assert images.dtype == torch.float32 and torch.isfinite(images).all()
    assert all(p.dtype == torch.float32 for p in model.parameters())  # MTT's learned lr included
    assert not torch.equal(images, record.start)  # the images moved
    assert not torch.equal(images, fp32.synthetic.images)  # the bf16 forwards really ran (other rounding)
    # ... and made the same update up to rounding: measured cosines 0.67 (DSA) .. 0.97 (IDM), norms within 0.6x..1.1x
    bf16_step, fp32_step = (images - record.start).flatten(), (fp32.synthetic.images - record.start).flatten()
    assert torch.nn.functional.cosine_similarity(bf16_step, fp32_step, dim=0) > 0.5
    assert 0.5 < float(bf16_step.norm() / fp32_step.norm()) < 2.0


@pytest.mark.parametrize("precision", ["bf16-true", "16-true"])
@pytest.mark.parametrize("name", sorted(METHODS))
def test_true_half_precisions_are_refused(name: str, precision: str, experts: Path, tmp_path: Path) -> None:
    build, data, steps = METHODS[name]
    with pytest.raises(ValueError, match=f"trainer.precision='{precision}' is not supported for distillation"):
        quiet_trainer(tmp_path, max_steps=steps, precision=precision).fit(build(experts), data())
