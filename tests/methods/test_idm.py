"""IDM on the embedded digits dataset: partition init, the queue (growth, eviction, training, the CE weight),
per-class steps, the batched real side, resume."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_dd.data import RealDataModule
from lightning_dd.data.protocol import RealDemand
from lightning_dd.methods import IDM
from lightning_dd.regularizers import CMIRegularizer, IIDRegularizer
from tests.helpers import quiet_trainer


def tiny(**kwargs: Any) -> IDM:
    defaults: dict[str, Any] = {"ipc": 1, "num_classes": 10, "image_shape": (1, 8, 8), "artifact_path": "",
                                "network": "convnet_w32", "net_generate_interval": 2, "net_num": 4,
                                "model_train_steps": 2, "batch_train": 16}
    defaults.update(kwargs)
    return IDM(**defaults)


def data() -> RealDataModule:
    return RealDataModule("digits", batch_real=8, iterations_per_epoch=4)


def fit(model: IDM, root: Any, iterations: int, **kwargs: Any) -> Any:
    trainer = quiet_trainer(root, max_steps=iterations * model.image_steps_per_iteration, **kwargs)
    trainer.fit(model, data())
    return trainer


def test_queue_grows_evicts_and_steps_per_class(tmp_path: Any) -> None:
    model = tiny()
    assert model.real_demand() == RealDemand(class_batches=1, extra_images=2 * 2 * 16)
    trainer = fit(model, tmp_path, 5)
    assert model.iteration == 5 and trainer.global_step == 50
    # 3 initial + pushes at iterations 0, 2, 4 = 6 pushed, capacity 4 keeps the newest four
    assert model.queue.pushed == 6 and [e.serial for e in model.queue] == [2, 3, 4, 5]
    assert sum(e.seen for e in model.queue) > 0


def test_partition_set_decodes_four_images_per_stored_image(tmp_path: Any) -> None:
    model = tiny(ipc=2)
    fit(model, tmp_path, 1)
    images, labels = model.synthetic.decode()
    assert images.shape == (10 * 2 * 4, 1, 8, 8) and labels.bincount().tolist() == [8] * 10
    assert model.distilled_set().images.shape[0] == 80


@pytest.mark.parametrize("stop", [3, 2])  # between pushes (3 % 2 = 1) and at a push (2 % 2 = 0)
def test_resume_with_a_queue_in_flight_equals_the_uninterrupted_run(tmp_path: Any, stop: int) -> None:
    straight = tiny(accuracy_reset_interval=3)
    fit(straight, tmp_path / "straight", 5)
    first = tiny(accuracy_reset_interval=3)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=stop * 10, save_top_k=-1)
    fit(first, tmp_path / "first", stop, callbacks=[ckpt], enable_checkpointing=True)
    path = next((tmp_path / "ckpt").glob(f"*step={stop * 10}.ckpt"))
    resumed = tiny(accuracy_reset_interval=3)
    quiet_trainer(tmp_path / "resumed", max_steps=50).fit(resumed, data(), ckpt_path=str(path))
    assert torch.equal(resumed.synthetic.images, straight.synthetic.images)
    assert [e.serial for e in resumed.queue] == [e.serial for e in straight.queue]
    for a, b in zip(resumed.queue, straight.queue, strict=True):
        assert (a.correct, a.seen) == (b.correct, b.seen)
        for pa, pb in zip(a.net.parameters(), b.net.parameters(), strict=True):
            assert torch.equal(pa, pb)


def test_batched_real_side_gives_the_loops_images(tmp_path: Any) -> None:
    loop, batched = tiny(batched_real=False), tiny(batched_real=True)
    fit(loop, tmp_path / "loop", 3)
    fit(batched, tmp_path / "batched", 3)
    assert torch.allclose(loop.synthetic.images, batched.synthetic.images, atol=1e-5)
    assert not torch.equal(loop.synthetic.images, tiny(batched_real=False).synthetic.images)  # it did move


def test_queue_networks_learn_on_real_data(tmp_path: Any) -> None:
    """One queue network trained on real digits: its running accuracy (reset every 4 iterations) rises."""
    model = tiny(net_num=1, initial_nets=1, net_generate_interval=1000, fetch_net_num=1, model_train_steps=8,
                 batch_train=32, accuracy_reset_interval=4, lr_net=0.05)
    fit(model, tmp_path, 4)
    entry = model.queue[0]
    early = entry.accuracy_percent
    fit_more = tiny(net_num=1, initial_nets=1, net_generate_interval=1000, fetch_net_num=1, model_train_steps=8,
                    batch_train=32, accuracy_reset_interval=4, lr_net=0.05)
    fit(fit_more, tmp_path / "more", 8)
    late = fit_more.queue[0].accuracy_percent  # meter reset at iteration 4: iterations 4..7 only
    assert late > early + 10 and late > 25  # chance is 10 %
    assert entry.seen == 4 * 8 * 32


def test_the_ce_term_waits_for_the_accuracy_meter(tmp_path: Any) -> None:
    """The CE weight is ce_weight x the network's running accuracy: 0 at iteration 0 (no prediction counted yet), so
    the first iteration equals plain matching; from the second on (the meters have counted) it changes the images."""
    runs = {}
    for weight in (0.0, 0.5):
        for iterations in (1, 2):
            model = tiny(ce_weight=weight, initial_nets=1, net_num=1, net_generate_interval=1000, fetch_net_num=1)
            fit(model, tmp_path / f"{weight}_{iterations}", iterations)
            runs[weight, iterations] = model.synthetic.images.detach().clone()
    assert torch.equal(runs[0.0, 1], runs[0.5, 1])
    assert not torch.allclose(runs[0.0, 2], runs[0.5, 2])


def test_idm_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="net_num must be an integer >= 1, got 0"):
        tiny(net_num=0)
    with pytest.raises(ValueError, match=r"initial_nets \(5\) must not exceed net_num \(4\)"):
        tiny(initial_nets=5)
    with pytest.raises(ValueError, match="ce_weight must be a number >= 0"):
        tiny(ce_weight=-1)
    with pytest.raises(ValueError, match="BatchNorm"):
        tiny(network="convnet_bn")


@pytest.mark.parametrize("make", [lambda p: IIDRegularizer(p, weight_cc=0.01, weight_cm=0.03),
                                  lambda p: CMIRegularizer(p, weight=10.0)], ids=["iid", "cmi"])
def test_regularizers_attach_per_class_and_change_the_images(tmp_path: Any, pool_path: Any, make: Any) -> None:
    """IDM + IID (the queue network's feature maps, per class) and IDM + CMI (per class, the 4*ipc expanded images)
    through the hook: finite, logged, and the images differ from plain IDM's."""
    plain = tiny(ipc=2)
    fit(plain, tmp_path / "plain", 2)
    regularized = tiny(ipc=2, regularizers=[make(str(pool_path))])
    fit(regularized, tmp_path / "reg", 2)
    assert torch.isfinite(regularized.synthetic.images).all()
    assert not torch.allclose(plain.synthetic.images, regularized.synthetic.images)


class RecordingIDM(IDM):
    """IDM that records, at every image step, the loss it was given, the class's synthetic images and labels, and
    a copy of the (only) queue network with its running accuracy."""

    def distill_step(self, batch: Any) -> None:
        self.real_parts = self.split_real(batch)[0]
        self.steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.nn.Module, float]] = []
        self.meters: list[tuple[int, int]] = []
        super().distill_step(batch)

    def image_step(self, loss: torch.Tensor, views: Any = None) -> torch.Tensor:
        entry = self.queue[0]
        self.steps.append((loss.detach().clone(), views.synthetic.detach().clone(), views.labels.clone(),
                           copy.deepcopy(entry.net), entry.accuracy_percent))
        self.meters.append((entry.correct, entry.seen))
        return super().image_step(loss, views)


def reference_embed(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """uitrbn/IDM ``embed_channel_avg(x, last=1000)``: every module of ``net.features`` in turn, flattened."""
    for module in list(net.features.modules())[1:]:  # type: ignore[union-attr]
        x = module(x)
    return x.view(x.shape[0], -1)


def test_each_class_step_is_the_references_loss(tmp_path: Any) -> None:
    """Without DSA, class c's loss is || mean e(real_c) - mean e(syn_c) ||^2 + ce_weight * acc% * CE(net(syn_c), c),
    with e the reference's embedding and acc% the matched net's running accuracy, recomputed here independently."""
    model = RecordingIDM(ipc=2, num_classes=10, image_shape=(1, 8, 8), artifact_path="", network="convnet_w32",
                         net_num=1, initial_nets=1, net_generate_interval=1000, fetch_net_num=1, model_train_steps=2,
                         batch_train=16, dsa_strategy="none", ce_weight=0.5)
    fit(model, tmp_path, 2)  # the second iteration: the meter has counted the first one's training predictions
    assert len(model.steps) == 10
    for c, (loss, syn, labels, net, acc) in enumerate(model.steps):
        assert syn.shape == (8, 1, 8, 8) and labels.tolist() == [c] * 8  # 2 stored images -> 8 expanded
        net.eval()
        with torch.no_grad():
            real_mean = reference_embed(net, model.real_parts[0, c]).mean(0)
            emb = reference_embed(net, syn)
            ce = torch.nn.functional.cross_entropy(net.classifier(emb), labels)  # type: ignore[operator]
            expected = ((real_mean - emb.mean(0)) ** 2).sum() + 0.5 * acc * ce
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
        assert 0 < acc <= 100
    # the weight's accuracy is the meter's percentage over the first iteration's 2 x 16 training predictions
    correct, seen = model.meters[0]
    assert seen == 2 * 16 and model.steps[0][4] == pytest.approx(100.0 * correct / seen)
