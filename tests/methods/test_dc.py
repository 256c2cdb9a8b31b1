"""DC and DSA (gradient matching) on the embedded digits dataset: the loop table, the iteration, the BatchNorm branch,
the batched path, the inner training, resume."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_dd.data.protocol import RealDemand
from lightning_dd.losses import class_gradient_distances
from lightning_dd.methods import DC, DSA
from lightning_dd.methods.dc import LOOPS, get_loops
from lightning_dd.networks import reinitialize_
from lightning_dd.training import fit_classifier
from tests.helpers import digits_data, quiet_trainer


def tiny(cls: type[DC] = DSA, **kwargs: Any) -> DC:
    defaults: dict[str, Any] = {"ipc": 2, "num_classes": 10, "image_shape": (1, 8, 8), "artifact_path": "",
                                "outer_loop": 2, "inner_loop": 2, "batch_train": 8}
    defaults.update(kwargs)
    return cls(**defaults)


def fit(model: DC, root: Any, steps: int, **kwargs: Any) -> None:
    quiet_trainer(root, max_steps=steps, **kwargs).fit(model, digits_data(batch_real=8, iterations_per_epoch=3))


def test_the_loop_table_is_the_references() -> None:
    assert [get_loops(i) for i in (1, 10, 20, 30, 40, 50)] == [(1, 1), (10, 50), (20, 25), (30, 20), (40, 15),
                                                                 (50, 10)]
    assert get_loops(11) == (10, 50) and get_loops(100) == (50, 10) and get_loops(1000) == (1000, 30)
    assert all(get_loops(i) == (200, 20) for i in (200, 400, 500, 600, 800))
    assert len(LOOPS) == 14
    with pytest.raises(ValueError, match=r"no reference \(outer_loop, inner_loop\) for ipc=7 .*model.outer_loop"):
        get_loops(7)
    with pytest.raises(ValueError, match="no reference"):
        DC(ipc=7, num_classes=10, image_shape=(1, 8, 8))
    model = DC(ipc=7, num_classes=10, image_shape=(1, 8, 8), outer_loop=3, inner_loop=4)
    assert (model.outer_loop, model.inner_loop, model.image_steps_per_iteration) == (3, 4, 3)
    assert model.real_demand() == RealDemand(class_batches=3)
    assert DC(ipc=10, num_classes=10, image_shape=(1, 8, 8)).image_steps_per_iteration == 10


def test_dc_has_no_augmentation_and_dsa_the_datasets(tmp_path: Any) -> None:
    dc, dsa = tiny(DC), tiny(DSA)
    fit(dc, tmp_path / "dc", 2)
    fit(dsa, tmp_path / "dsa", 2)
    assert dc.dsa.is_identity and dc.inner_recipe.dsa_strategy == "none"
    assert dsa.dsa.strategy == "color_crop_cutout_scale_rotate"  # digits: no flip
    assert dsa.inner_recipe.dsa_strategy == dsa.dsa.strategy
    assert not torch.equal(dc.synthetic.images, dsa.synthetic.images)
    hp = dc.hparams
    assert hp["dsa_strategy"] == "none" and hp["metric"] == "ours"


def test_one_iteration_takes_outer_loop_steps_on_fresh_real_batches(tmp_path: Any) -> None:
    model = tiny(outer_loop=3)
    trainer = quiet_trainer(tmp_path, max_steps=6)
    seen: list[torch.Tensor] = []
    original = model.match

    def spy(real: torch.Tensor) -> Any:
        seen.append(real.clone())
        return original(real)

    model.match = spy  # type: ignore[method-assign]
    trainer.fit(model, digits_data(batch_real=8, iterations_per_epoch=3))
    assert model.iteration == 2 and trainer.global_step == 6 and len(seen) == 6
    assert all(tuple(r.shape) == (10, 8, 1, 8, 8) for r in seen)
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])  # a fresh batch per outer step


def test_the_step_loss_is_the_sum_of_per_class_distances(tmp_path: Any) -> None:
    """match() on a known network equals the distances computed directly (no augmentation: DC)."""
    model = tiny(DC, metric="mse")
    fit(model, tmp_path, 2)
    net = model.helpers["net"]
    real = torch.randn(10, 4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    loss, views = model.match(real)
    syn = model.synthetic.by_class()
    want = class_gradient_distances(net, real, syn, torch.arange(10), metric="mse").sum()
    assert torch.allclose(loss, want, rtol=1e-6) and views.augmented is None


def test_batched_classes_give_the_loops_images(tmp_path: Any) -> None:
    # mse: well conditioned, so float32 rounding stays at rounding size over the run (the "ours" cosines amplify
    # it where a class's gradient is near zero; the next test compares one step of those directly)
    kwargs: dict[str, Any] = {"metric": "mse", "optimizer": lambda p: torch.optim.SGD(p, lr=1e-4, momentum=0.5)}
    loop, batched = tiny(batched_classes=False, **kwargs), tiny(batched_classes=True, **kwargs)
    fit(loop, tmp_path / "loop", 4)
    fit(batched, tmp_path / "batched", 4)
    assert not loop.batched and batched.batched
    assert torch.allclose(loop.synthetic.images, batched.synthetic.images, atol=2e-5)
    assert (loop.synthetic.images - tiny(**kwargs).synthetic.images).abs().max() > 1e-3  # and they moved


def test_one_batched_step_equals_the_loop_in_loss_and_image_gradient(tmp_path: Any) -> None:
    model = tiny()  # the reference metric "ours", with DSA
    fit(model, tmp_path, 2)
    real = torch.randn(10, 8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    out = {}
    for batched in (False, True):
        model.batched = batched
        state = model.generator.get_state()
        loss, _ = model.match(real)
        model.generator.set_state(state)
        (grad,) = torch.autograd.grad(loss, model.synthetic.images)
        out[batched] = (loss.detach(), grad)
    assert torch.allclose(out[False][0], out[True][0], rtol=1e-5)
    difference = (out[False][1] - out[True][1]).norm() / out[False][1].norm()
    assert difference < 1e-4, difference


def test_auto_batches_on_accelerators_only(tmp_path: Any) -> None:
    model = tiny()
    fit(model, tmp_path, 2)
    assert model.hparams["batched_classes"] == "auto" and model.batched is False  # the CPU: the loop


def test_the_inner_training_lowers_the_networks_loss_on_the_synthetic_set() -> None:
    model = tiny(DC, inner_loop=50)
    net = model.helpers["net"]
    reinitialize_(net, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(10).repeat_interleave(2)
    images = 2 * torch.randn(10, 1, 8, 8, generator=g)[labels] + 0.1 * torch.randn(20, 1, 8, 8, generator=g)
    with torch.no_grad():
        before = torch.nn.functional.cross_entropy(net(images), labels)
    fit_classifier(net, images, labels, model.inner_recipe, torch.Generator().manual_seed(2))
    with torch.no_grad():
        after = torch.nn.functional.cross_entropy(net(images), labels)
    assert model.inner_recipe.momentum == 0 and model.inner_recipe.weight_decay == 0 and model.inner_recipe.lr == 0.01
    assert after < 0.9 * before  # 150 plain SGD steps at lr 0.01: the reference inner training is gentle


def test_batchnorm_networks_freeze_their_statistics_for_matching(tmp_path: Any) -> None:
    model = tiny(DC, network="convnet_bn", batched_classes=True)
    modes: list[bool] = []
    original = model.match

    def spy(real: torch.Tensor) -> Any:
        bns = [m for m in model.helpers["net"].modules() if isinstance(m, torch.nn.BatchNorm2d)]
        modes.extend(m.training for m in bns)
        assert all(float(m.running_mean.abs().sum()) > 0 for m in bns)  # set from the 16 real images per class
        return original(real)

    model.match = spy  # type: ignore[method-assign]
    fit(model, tmp_path, 2)
    assert len(modes) == 2 * 3 and not any(modes)  # 2 outer steps x 3 BatchNorm layers, all frozen for matching


def test_resume_equals_the_uninterrupted_run(tmp_path: Any) -> None:
    straight = tiny()
    fit(straight, tmp_path / "straight", 8)
    first = tiny()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    fit(first, tmp_path / "first", 4, callbacks=[ckpt], enable_checkpointing=True)
    resumed = tiny()
    trainer = quiet_trainer(tmp_path / "resumed", max_steps=8)
    trainer.fit(resumed, digits_data(batch_real=8, iterations_per_epoch=3), ckpt_path=str(tmp_path / "ckpt" /
                                                                                         "epoch=0-step=4.ckpt"))
    assert torch.equal(resumed.synthetic.images, straight.synthetic.images)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="outer_loop must be an integer >= 1"):
        tiny(outer_loop=0)
    with pytest.raises(ValueError, match="batched_classes must be true, false or 'auto', got 'yes'"):
        tiny(batched_classes="yes")
    with pytest.raises(ValueError, match="batch_train must be an integer >= 1"):
        tiny(batch_train=0)
    with pytest.raises(ValueError, match=r"metric must be one of .*got 'l2'"):
        tiny(metric="l2")
