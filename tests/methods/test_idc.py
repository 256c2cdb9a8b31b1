"""IDC on the embedded digits dataset (pixels space): multi-formation init and decode, per-class steps, the network
trained on real data, the lr rule, λ = 0, resume."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_dd.data import RealDataModule
from lightning_dd.data.protocol import RealDemand
from lightning_dd.methods import IDC
from lightning_dd.methods.idc import mix_init
from lightning_dd.regularizers import CMIRegularizer
from lightning_dd.synthetic import decode_grid
from tests.helpers import quiet_trainer


def tiny(**kwargs: Any) -> IDC:
    defaults: dict[str, Any] = {"ipc": 1, "num_classes": 10, "image_shape": (1, 8, 8), "artifact_path": "",
                                "inner_loop": 3, "n_data": 64, "batch_net": 32}
    defaults.update(kwargs)
    return IDC(**defaults)


def data(**kwargs: Any) -> RealDataModule:
    return RealDataModule("digits", batch_real=8, iterations_per_epoch=4, space="pixels", **kwargs)


def fit(model: IDC, root: Any, iterations: int, **kwargs: Any) -> Any:
    trainer = quiet_trainer(root, max_steps=iterations * model.num_classes, **kwargs)
    trainer.fit(model, data())
    return trainer


def test_mix_init_places_the_reference_blocks_and_decode_returns_them() -> None:
    ipc, f = 2, 2
    values = torch.arange(ipc * f * f, dtype=torch.float32)
    images = values.view(-1, 1, 1, 1).expand(-1, 3, 8, 8).clone()  # image i is constant i
    grid = mix_init(images, ipc, f)
    assert tuple(grid.shape) == (2, 3, 8, 8)
    # stored image m: blocks (row, col) = (0, 0), (0, 1), (1, 0), (1, 1) hold images m, ipc + m, 2 ipc + m, 3 ipc + m
    for m in range(ipc):
        blocks = [grid[m, :, :4, :4], grid[m, :, :4, 4:], grid[m, :, 4:, :4], grid[m, :, 4:, 4:]]
        assert [float(b.unique()) for b in blocks] == [m, ipc + m, 2 * ipc + m, 3 * ipc + m]
    decoded, source = decode_grid(grid, f)
    assert tuple(decoded.shape) == (8, 3, 8, 8) and source.tolist() == [0, 1] * 4
    # crop-major order: crop k of stored image m is the constant image k * ipc + m again (bilinear of a constant)
    assert [float(d.mean()) for d in decoded] == pytest.approx([0, 1, 2, 3, 4, 5, 6, 7])


def test_mix_init_downscales_with_nearest_and_handles_odd_sizes() -> None:
    images = torch.rand(4, 1, 7, 7, generator=torch.Generator().manual_seed(0))
    grid = mix_init(images, 1, 2)
    assert torch.equal(grid[0, :, :4, :4], F.interpolate(images[:1], size=(4, 4))[0])  # first row/col one larger
    assert torch.equal(grid[0, :, 4:, 4:], F.interpolate(images[3:], size=(3, 3))[0])
    with pytest.raises(ValueError, match="needs ipc \\* factor\\*\\*2 = 4 images, got 3"):
        mix_init(images[:3], 1, 2)


def test_the_set_is_factorised_in_pixels_and_mix_takes_the_first_images(tmp_path: Any) -> None:
    model = tiny(ipc=2)
    fit(model, tmp_path, 1)
    assert model.synthetic.factor == 2 and model.synthetic.space == "pixels"
    images, labels = model.synthetic.decode()
    assert tuple(images.shape) == (80, 1, 8, 8) and torch.bincount(labels).tolist() == [8] * 10
    store = data().load_train()
    assert model.init_indices == [int(i) for c in range(10) for i in store.indices_by_class[c][:8]]
    assert model.image_steps_per_iteration == 10
    assert model.real_demand() == RealDemand(class_batches=1, extra_images=64)


def test_the_image_lr_follows_the_reference_rule(tmp_path: Any) -> None:
    model = tiny(ipc=5)
    trainer = fit(model, tmp_path, 1)
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(5e-3 * 5 / 10 * (8 / 32) ** 2)
    assert tiny(lr_scaling="none").lr_scale() == 1.0


def test_each_iteration_takes_one_step_per_class(tmp_path: Any) -> None:
    model = tiny()
    trainer = fit(model, tmp_path, 3)
    assert model.iteration == 3 and trainer.global_step == 30


def test_the_network_learns_the_real_data_between_steps(tmp_path: Any) -> None:
    """Between two new networks (inner_loop iterations) it is trained on real images: its loss on them falls."""
    model = tiny(inner_loop=50, n_data=512, batch_net=32, cutmix_prob=0.0, lr_net=0.05)
    fit(model, tmp_path / "a", 1)
    store = data().load_train()
    x = store.images[:500].float().div(255)
    x = (x - torch.tensor(model.data_meta["mean"]).view(1, -1, 1, 1)) / torch.tensor(model.data_meta["std"]).view(
        1, -1, 1, 1)
    y = store.labels[:500]
    net = model.helpers["net"]
    with torch.no_grad():
        after_one = F.cross_entropy(net(x), y)
    fit(model, tmp_path / "b", 12)  # a new fit: the same network init, then 12 passes instead of 1
    with torch.no_grad():
        after_many = F.cross_entropy(net(x), y)
    assert after_many < 0.7 * after_one


def test_zero_lambda_cmi_leaves_idc_bit_identical(tmp_path: Any, pool_path: Any) -> None:
    plain = tiny()
    fit(plain, tmp_path / "plain", 2)
    with_zero = tiny(regularizers=[CMIRegularizer(pool=str(pool_path), weight=0.0)])
    fit(with_zero, tmp_path / "zero", 2)
    assert torch.equal(plain.synthetic.images, with_zero.synthetic.images)
    with_cmi = tiny(regularizers=[CMIRegularizer(pool=str(pool_path), weight=100.0)])
    fit(with_cmi, tmp_path / "cmi", 2)
    assert not torch.equal(plain.synthetic.images, with_cmi.synthetic.images)


@pytest.mark.parametrize("stop", [4, 3])  # mid-network (4 % 3 = 1) and at a new network (3 % 3 = 0)
def test_resume_equals_the_uninterrupted_run(tmp_path: Any, stop: int) -> None:
    straight = tiny()
    fit(straight, tmp_path / "straight", 6)
    first = tiny()
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=stop * 10, save_top_k=-1)
    fit(first, tmp_path / "first", stop, callbacks=[ckpt], enable_checkpointing=True)
    path = next((tmp_path / "ckpt").glob(f"*step={stop * 10}.ckpt"))
    resumed = tiny()
    quiet_trainer(tmp_path / "resumed", max_steps=60).fit(resumed, data(), ckpt_path=str(path))
    assert torch.equal(resumed.synthetic.images, straight.synthetic.images)


def test_batched_real_gradients_give_the_loops_images(tmp_path: Any) -> None:
    loop, batched = tiny(batched_classes=False), tiny(batched_classes=True)
    fit(loop, tmp_path / "loop", 2)
    fit(batched, tmp_path / "batched", 2)
    assert torch.allclose(loop.synthetic.images, batched.synthetic.images, atol=1e-5)


def test_idc_refuses_other_spaces_and_inits() -> None:
    with pytest.raises(ValueError, match=r"IDC distils in the image spaces \('pixels',\), got space='normalized'"):
        tiny(space="normalized")
    with pytest.raises(ValueError, match="init must be one of"):
        tiny(init="kmeans")
    with pytest.raises(ValueError, match="factor must be an integer >= 1"):
        tiny(factor=0)
    with pytest.raises(ValueError, match=r"batched_classes=True needs a network without BatchNorm.*'convnet_bn'"):
        tiny(network="convnet_bn", batched_classes=True)


def test_regularizers_see_one_class_of_decoded_pixels_per_step(tmp_path: Any, pool_path: Any) -> None:
    """IDC's per-class CMI: each step hands the regularizer the class's decoded images in [0, 1] pixel space (the
    proxy pool normalises them: lightning_dd.pretrained.proxies.to_proxy_input)."""
    cmi = CMIRegularizer(pool=str(pool_path), weight=1.0)
    seen: list[tuple[str, tuple[int, ...], list[int]]] = []
    original = cmi.terms

    def spy(ctx: Any) -> Any:
        if not seen:  # the first step sees the clamped initial pixels
            assert float(ctx.synthetic.min()) >= 0 and float(ctx.synthetic.max()) <= 1
        seen.append((ctx.space, tuple(ctx.synthetic.shape), ctx.labels.unique().tolist()))
        assert ctx.synthetic.requires_grad
        return original(ctx)

    cmi.terms = spy  # type: ignore[method-assign]
    model = tiny(ipc=2, regularizers=[cmi])
    fit(model, tmp_path, 1)
    assert [s[2] for s in seen] == [[c] for c in range(10)]  # one class per step, in class order
    assert all(space == "pixels" and shape == (8, 1, 8, 8) for space, shape, _ in seen)  # ipc x 2^2 decoded
