"""RealDataModule: batches, normalization, validation, and exact mid-epoch resume under a real Trainer."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import Tensor

from lightning_dd.data import RealDataModule, dataset_info, normalize
from tests.fixtures import write_cifar10, write_image_folder


def test_validation_is_eager() -> None:
    with pytest.raises(ValueError, match=r"'cifar11'.*cifar10"):
        RealDataModule("cifar11")
    with pytest.raises(ValueError, match="batch_real"):
        RealDataModule(batch_real=0)
    with pytest.raises(ValueError, match="iterations_per_epoch"):
        RealDataModule(iterations_per_epoch=0)
    with pytest.raises(ValueError, match="root"):
        RealDataModule("cifar10")


def test_info_needs_no_image_data(tmp_path: Path) -> None:
    dm = RealDataModule("cifar10", root=str(tmp_path / "not-there"))
    assert dm.num_classes == 10 and dm.image_shape == (3, 32, 32)
    assert dm.mean == (0.4914, 0.4822, 0.4465) and dm.std == (0.2023, 0.1994, 0.2010)
    assert dm.class_names[0] == "airplane" and dm.info == dataset_info("cifar10")
    assert dm.hparams["dataset"] == "cifar10" and dm.hparams["batch_real"] == 256


def test_digits_batches_and_loaders() -> None:
    dm = RealDataModule(batch_real=3, iterations_per_epoch=4, test_batch_size=100, seed=1)
    dm.setup("fit")
    store = dm.store
    dm.setup()
    assert dm.store is store  # loaded once
    assert dm.per_class == 3
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(loader) == len(batches) == 4
    for images, labels in batches:
        assert images.dtype == torch.uint8 and images.shape == (30, 1, 8, 8)
        assert labels.dtype == torch.int64 and labels.tolist() == [c for c in range(10) for _ in range(3)]
    images, labels = dm.on_after_batch_transfer(batches[0], 0)
    assert images.dtype == torch.float32
    torch.testing.assert_close(images, normalize(batches[0][0], dm.mean, dm.std))
    torch.testing.assert_close(dm.normalize(batches[0][0]), images)
    test = dm.test_split()
    assert len(test) == 359 and test.images.dtype == torch.uint8
    for loader in (dm.test_dataloader(),):
        got = list(loader)
        assert [len(y) for _, y in got] == [100, 100, 100, 59]
        assert torch.equal(torch.cat([x for x, _ in got]), test.images)
        assert torch.equal(torch.cat([y for _, y in got]), test.labels)
    real = dm.real_images(4, 5, torch.Generator().manual_seed(0))
    assert real.dtype == torch.float32 and real.shape == (5, 1, 8, 8) and real.device.type == "cpu"
    assert bool((real >= normalize(torch.zeros(1, 1, 1, 1, dtype=torch.uint8), dm.mean, dm.std) - 1e-6).all())


def test_batch_real_capped_with_warning() -> None:
    dm = RealDataModule(batch_real=1000, iterations_per_epoch=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading alone (pretrain, evaluation) says nothing
        dm.setup()
    with pytest.warns(UserWarning, match=r"batch_real=1000 exceeds the smallest class.*127 images"):
        assert dm.per_class == 127
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape[0] == 1270


def test_cifar10_pickles_and_image_folder_module(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "pickles", train_per_class=3)
    dm = RealDataModule("cifar10", root=str(tmp_path / "pickles"), batch_real=2, iterations_per_epoch=2)
    dm.setup()
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (20, 3, 32, 32) and labels.tolist() == [c for c in range(10) for _ in range(2)]
    write_image_folder(tmp_path / "folder", ["b", "a"], train_per_class=3, size=(5, 7), channels=1)
    dm = RealDataModule("image_folder", root=str(tmp_path / "folder"), batch_real=2)
    assert dm.class_names == ("a", "b") and dm.image_shape == (1, 5, 7) and len(dm.mean) == 1
    dm.setup()
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 1, 5, 7)


class _Recorder(pl.LightningModule):
    """Manual optimization, one optimizer step per batch; records the (normalized) train batches it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[tuple[int, Tensor, Tensor]] = []

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        assert images.dtype == torch.float32
        self.seen.append((self.current_epoch, images.clone(), labels.clone()))
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward((self.weight * images.mean()).sum())
        opt.step()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        assert batch[0].dtype == torch.float32

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(tmp_path: Path, num_workers: int, ckpt_path: str | None = None) -> _Recorder:
    dm = RealDataModule(batch_real=2, iterations_per_epoch=5, seed=3, test_batch_size=256, num_workers=num_workers)
    model = _Recorder()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        use_distributed_sampler=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[
            ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=n, save_top_k=-1, filename=f"every{n}-{{step}}")
            for n in (3, 5)
        ],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    assert not [w for w in caught if "not resumable" in str(w.message)]
    return model


@pytest.mark.parametrize("num_workers", [0, pytest.param(1, id="worker")])
def test_resume_mid_epoch_sees_same_batches(tmp_path: Path, num_workers: int) -> None:
    full = _fit(tmp_path / "full", num_workers)
    assert len(full.seen) == 10
    assert [e for e, _, _ in full.seen] == [0] * 5 + [1] * 5
    # Lightning called set_epoch: epoch 1 is not a replay of epoch 0, and every batch is the sampler's batch b
    dm = RealDataModule(batch_real=2, iterations_per_epoch=5, seed=3)
    dm.setup()
    loader = dm.train_dataloader()
    for i, (epoch, images, labels) in enumerate(full.seen):
        idx = loader.batch_sampler.batch(i % 5, epoch=epoch)
        torch.testing.assert_close(images, dm.normalize(dm.store.images[idx]))
        assert torch.equal(labels, dm.store.labels[idx])
    assert not torch.equal(full.seen[0][1], full.seen[5][1])
    # resume mid-epoch from step 3 (epoch 0, 3 batches done) and step 6 (epoch 1, 1 batch done), and from the end of
    # epoch 0 (step 5)
    for step in (3, 5, 6):
        ckpt = tmp_path / "full" / f"every{3 if step % 3 == 0 else 5}-step={step}.ckpt"
        state = torch.load(ckpt, weights_only=False)["RealDataModule"]
        assert state["position"] == step
        resumed = _fit(tmp_path / f"resumed{step}", num_workers, ckpt_path=str(ckpt))
        assert len(resumed.seen) == 10 - step
        for (e_full, x_full, y_full), (e_res, x_res, y_res) in zip(full.seen[step:], resumed.seen, strict=True):
            assert e_full == e_res
            assert torch.equal(x_full, x_res) and torch.equal(y_full, y_res)


def test_state_dict_roundtrip_continues_the_stream_in_plain_pytorch() -> None:
    dm = RealDataModule(batch_real=1, iterations_per_epoch=4, seed=5)
    dm.setup()
    sampler = dm.train_dataloader().batch_sampler
    reference = [x for x, _ in dm.train_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(reference, [x for x, _ in dm.train_dataloader()], strict=True))
    other = RealDataModule(batch_real=1, iterations_per_epoch=4, seed=5)
    other.load_state_dict(dm.state_dict() | {"position": 3})
    other.setup()
    loader = other.train_dataloader()
    assert len(loader) == 4  # Lightning expects the full epoch length on a resumed loader
    rest = list(loader)
    # stream batches 3..6: the last batch of sampler epoch 0, then batches 0..2 of epoch 1
    assert len(rest) == 4 and torch.equal(rest[0][0], reference[3])
    for (x, y), b in zip(rest[1:], range(3), strict=True):
        idx = sampler.batch(b, epoch=1)
        assert torch.equal(x, other.store.images[idx]) and torch.equal(y, other.store.labels[idx])


def test_state_dict_of_the_old_format_maps_to_the_stream_position() -> None:
    dm = RealDataModule(batch_real=1, iterations_per_epoch=4, seed=5)
    dm.load_state_dict({"epoch": 2, "batches_consumed": 1})
    assert dm.state_dict()["position"] == 9


@pytest.mark.parametrize(("arg", "value"), [("batch_real", 2), ("seed", 6), ("iterations_per_epoch", 5)])
def test_load_state_dict_refuses_another_stream(arg: str, value: int) -> None:
    saved = RealDataModule(batch_real=1, iterations_per_epoch=4, seed=5).state_dict()
    other = RealDataModule(**{"batch_real": 1, "iterations_per_epoch": 4, "seed": 5, arg: value})
    with pytest.raises(ValueError, match=rf"data\.{arg}: checkpoint .*, this run {value}"):
        other.load_state_dict(saved)


def test_io_is_explicit(tmp_path: Path) -> None:
    dm = RealDataModule(batch_real=4, iterations_per_epoch=1)
    assert dm.info == dataset_info("digits")  # described at construction, no I/O for a fixed dataset
    for name in ("store", "per_class"):
        with pytest.raises(RuntimeError, match=rf"RealDataModule\.{name}: .*not loaded.*load_train\(\)"):
            getattr(dm, name)
    store = dm.load_train()
    assert dm.store is store and dm.load_train() is store and dm.per_class == 4
    # a file-described dataset is read at construction (the CLI links num_classes / image_shape then) ...
    write_image_folder(tmp_path / "folder", ["x", "y", "z"], size=(4, 6))
    folder = RealDataModule("image_folder", root=str(tmp_path / "folder"))
    assert folder.describe() == folder.info and folder.image_shape == (3, 4, 6)
    # ... and kept in memory afterwards
    for path in sorted((tmp_path / "folder").rglob("*.png"), reverse=True):
        path.unlink()
    assert folder.num_classes == 3 and folder.class_names == ("x", "y", "z")
    with pytest.raises(FileNotFoundError, match="'image_folder' not found"):
        RealDataModule("image_folder", root=str(tmp_path / "missing"))


def test_real_data_source_protocol() -> None:
    from lightning_dd.data import RealDataSource, random_real_subset
    from lightning_dd.seeding import STREAM_INIT, make_generator

    dm = RealDataModule(batch_real=2)
    assert isinstance(dm, RealDataSource) and not isinstance(object(), RealDataSource)
    got = random_real_subset(dm, 10, 3, seed=7)
    generator = make_generator(7, STREAM_INIT)
    expected = torch.cat([dm.real_images(c, 3, generator) for c in range(10)])
    assert got.shape == (30, 1, 8, 8) and torch.equal(got, expected)
    assert not torch.equal(got, random_real_subset(dm, 10, 3, seed=8))
