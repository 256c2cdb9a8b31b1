"""The shared DistillationModule behaviour, exercised through DM on the embedded digits dataset."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_dd.artifact import DistilledSet
from lightning_dd.methods import DM, RandomSelection
from tests.helpers import digits_data, quiet_trainer, tiny_dm


def fit(model, tmp_path, steps, data=None, **trainer_kwargs):
    trainer = quiet_trainer(tmp_path, max_steps=steps, **trainer_kwargs)
    trainer.fit(model, data or digits_data())
    return trainer


def test_images_receive_gradients_and_move(tmp_path):
    model = tiny_dm(ipc=2)
    trainer = fit(model, tmp_path, 3)
    initial = RandomSelection(ipc=2, num_classes=10, image_shape=(1, 8, 8), artifact_path="")
    quiet_trainer(tmp_path, max_steps=1).fit(initial, digits_data())
    moved = (model.synthetic.images.detach() - initial.synthetic.images).abs()
    assert trainer.global_step == 3
    assert moved.amax() > 1e-3  # every class's images changed
    assert (moved.flatten(1).amax(1) > 0).all()


def test_same_seed_bit_identical_different_seed_differs(tmp_path):
    runs = []
    for seed in (0, 0, 1):
        model = tiny_dm(ipc=2, seed=seed)
        fit(model, tmp_path / str(len(runs)), 4, data=digits_data(seed=seed))
        runs.append(model.synthetic.images.detach().clone())
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def test_global_rng_does_not_change_the_result(tmp_path):
    images = []
    for global_seed in (1, 12345):
        torch.manual_seed(global_seed)
        model = tiny_dm(ipc=1)
        fit(model, tmp_path / str(global_seed), 3)
        images.append(model.synthetic.images.detach().clone())
    assert torch.equal(images[0], images[1])


def test_resume_from_mid_run_checkpoint_matches_uninterrupted_run(tmp_path):
    # 7 iterations with 3 batches per epoch, so the resume crosses epoch boundaries and starts mid-epoch
    straight = tiny_dm(ipc=2)
    fit(straight, tmp_path / "straight", 7, data=digits_data(iterations_per_epoch=3))

    first = tiny_dm(ipc=2)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    fit(first, tmp_path / "first", 4, data=digits_data(iterations_per_epoch=3), callbacks=[ckpt],
        enable_checkpointing=True)
    path = tmp_path / "ckpt" / "epoch=1-step=4.ckpt"
    assert path.is_file()

    resumed = tiny_dm(ipc=2)
    trainer = quiet_trainer(tmp_path / "resumed", max_steps=7)
    trainer.fit(resumed, digits_data(iterations_per_epoch=3), ckpt_path=str(path))
    assert trainer.global_step == 7
    assert torch.equal(resumed.synthetic.images.detach(), straight.synthetic.images.detach())


def test_random_selection_is_the_init_of_real_init_methods(tmp_path):
    baseline = RandomSelection(ipc=3, num_classes=10, image_shape=(1, 8, 8), seed=5, artifact_path="")
    trainer = fit(baseline, tmp_path / "r", 10)
    assert trainer.global_step == 0  # nothing optimised; fit stopped after selecting
    # a DM step with learning rate 0 leaves the initial images: they equal the baseline of the same seed
    dm = tiny_dm(ipc=3, seed=5, optimizer=lambda p: torch.optim.SGD(p, lr=0.0))
    fit(dm, tmp_path / "d", 1)
    assert torch.equal(dm.synthetic.images.detach(), baseline.synthetic.images)
    labels = baseline.synthetic.labels
    assert labels.tolist() == [c for c in range(10) for _ in range(3)]


def test_export_writes_atomic_artifact_with_description(tmp_path):
    path = tmp_path / "out" / "set.pt"
    model = tiny_dm(ipc=1, artifact_path=str(path))
    fit(model, tmp_path, 2)
    loaded = DistilledSet.load(path)
    assert loaded.method == "DM" and loaded.dataset == "digits" and loaded.ipc == 1
    assert loaded.image_shape == (1, 8, 8) and len(loaded.class_names) == 10
    assert torch.equal(loaded.images, model.synthetic.images.detach())
    assert loaded.hparams["network"] == "convnet"
    assert path.with_suffix(".png").is_file()
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_nan_loss_stops_with_clear_error(tmp_path):
    model = tiny_dm(ipc=1, optimizer=lambda p: torch.optim.SGD(p, lr=1e30, momentum=0.5))
    with pytest.raises(FloatingPointError, match="lower the image learning rate"):
        fit(model, tmp_path, 50)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ipc": 0}, "ipc"),
        ({"init": "zeros"}, "init"),
        ({"network": "foonet"}, "foonet"),
        ({"classes_per_forward": 0}, "classes_per_forward"),
        ({"real_images_per_forward": 0}, "real_images_per_forward"),
    ],
)
def test_bad_model_arguments_fail_fast(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_dm(**kwargs)


def test_shape_mismatch_with_data_is_reported(tmp_path):
    model = DM(ipc=1, num_classes=10, image_shape=(3, 32, 32), artifact_path="")
    with pytest.raises(ValueError, match="digits"):
        fit(model, tmp_path, 1)


def test_noise_init_is_seeded(tmp_path):
    a, b = tiny_dm(ipc=1, init="noise"), tiny_dm(ipc=1, init="noise")
    for model in (a, b):
        fit(model, tmp_path, 1, data=digits_data())
    assert torch.equal(a.synthetic.images, b.synthetic.images)


def test_auto_chunking_per_device():
    model = tiny_dm()
    assert model.resolve_chunk_size(torch.device("cpu")) == 1
    assert model.resolve_chunk_size(torch.device("cuda")) == 10
    bn = tiny_dm(network="convnet_bn")
    assert bn.resolve_chunk_size(torch.device("cpu")) == 10
    # real images per forward: small forwards on the CPU (allocator reuse), never for BatchNorm (batch statistics)
    assert model.resolve_real_per_forward(torch.device("cpu")) == 16
    assert model.resolve_real_per_forward(torch.device("cuda")) is None
    assert bn.resolve_real_per_forward(torch.device("cpu")) is None
    assert tiny_dm(real_images_per_forward=None).resolve_real_per_forward(torch.device("cpu")) is None
    assert tiny_dm(real_images_per_forward=7).resolve_real_per_forward(torch.device("cuda")) == 7


def test_bf16_mixed_keeps_images_float32(tmp_path):
    model = tiny_dm(ipc=1)
    fit(model, tmp_path, 2, precision="bf16-mixed")
    assert model.synthetic.images.dtype == torch.float32
    assert torch.isfinite(model.synthetic.images).all()


def test_lightning_is_importable_as_plain_module():
    assert issubclass(DM, L.LightningModule)
