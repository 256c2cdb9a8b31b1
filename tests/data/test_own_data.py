"""Your own data: tensors or a torch Dataset -> DM -> artifact -> a plain PyTorch model trained on it."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_dd.data import TensorDataModule
from lightning_dd.evaluation.run import evaluate_artifact
from lightning_dd.methods import DM

ZEROS = torch.zeros(4, dtype=torch.long)


def two_blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright-left vs bright-right 3x8x8 problem in [0, 1] floats (plus noise): any learner separates it."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = 0.3 * torch.rand(n, 3, 8, 8, generator=g)
    images[labels == 0, :, :, :4] += 0.6
    images[labels == 1, :, :, 4:] += 0.6
    return images.clamp(0, 1), labels


def test_tensors_to_dm_to_a_plain_pytorch_model(tmp_path: Path) -> None:
    images, labels = two_blobs(200, 0)
    test_images, test_labels = two_blobs(100, 1)
    # the README's snippet
    data = TensorDataModule(images, labels, test_images=test_images, test_labels=test_labels,
                            class_names=["left", "right"], batch_real=16)
    model = DM(ipc=2, num_classes=2, image_shape=(3, 8, 8), artifact_path=str(tmp_path / "mine.pt"))
    L.Trainer(max_steps=20, accelerator="cpu", logger=False, enable_checkpointing=False,
              enable_progress_bar=False, use_distributed_sampler=False).fit(model, data)
    d = torch.load(tmp_path / "mine.pt", weights_only=True)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(100):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(d["images"]), d["labels"]).backward()
        optimizer.step()
    mean, std = torch.tensor(d["mean"]).view(1, 3, 1, 1), torch.tensor(d["std"]).view(1, 3, 1, 1)
    accuracy = (net((test_images - mean) / std).argmax(1) == test_labels).float().mean()
    assert accuracy > 0.9
    assert (d["dataset"], d["class_names"], d["ipc"]) == ("tensors", ["left", "right"], 2)
    # statistics computed from the train images, as population mean/std of [0, 1] pixels
    stored = (images.double() * 255).round() / 255  # 8-bit, as every dataset
    torch.testing.assert_close(torch.tensor(d["mean"]), stored.mean(dim=(0, 2, 3)).float())
    torch.testing.assert_close(torch.tensor(d["std"]), stored.std(dim=(0, 2, 3), unbiased=False).float())
    # evaluation of the artifact on the user's test tensors
    result = evaluate_artifact(tmp_path / "mine.pt", models=["mlp"], runs=1, epochs=20,
                               trainer_kwargs={"accelerator": "cpu"}, test=(test_images, test_labels))
    assert result["results"]["mlp"]["mean"] > 90


def test_from_dataset_equals_from_tensors() -> None:
    images, labels = two_blobs(40, 0)
    u8 = (images * 255).round().to(torch.uint8)
    a = TensorDataModule.from_dataset(TensorDataset(u8, labels), batch_real=4)
    b = TensorDataModule(u8, labels, batch_real=4)
    a.setup("fit")
    b.setup("fit")
    assert a.info == b.info and a.info.class_names == ("0", "1")
    assert torch.equal(a.store.images, b.store.images) and torch.equal(a.store.labels, b.store.labels)
    assert "images" not in a.hparams  # the data is not a hyper-parameter


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images": torch.rand(4, 8, 8), "labels": ZEROS}, r"images must be a \(N, C, H, W\) tensor"),
        ({"images": torch.rand(4, 1, 8, 8) * 2, "labels": ZEROS}, r"must lie in \[0, 1\]"),
        ({"images": torch.rand(4, 1, 8, 8), "labels": ZEROS[:3]}, "labels must be 4 integer class indices"),
        ({"images": torch.rand(4, 1, 8, 8), "labels": torch.tensor([0, 1, 2, 3]), "class_names": ["a", "b"]},
         r"labels must lie in \[0, 2\)"),
        ({"images": torch.rand(4, 1, 8, 8), "labels": ZEROS, "mean": [0.5]}, "give both mean and std"),
    ],
)
def test_bad_tensors_are_refused_with_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TensorDataModule(**kwargs)


def test_evaluation_without_a_test_split_says_so() -> None:
    images, labels = two_blobs(20, 0)
    data = TensorDataModule(images, labels, batch_real=2)
    with pytest.raises(ValueError, match="no test split was given"):
        data.test_split()


def test_the_command_line_takes_your_own_data_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from lightning_dd.artifact import DistilledSet
    from lightning_dd.cli import main

    argv = ["fit", "--model", "DM", "--model.ipc", "2", "--data.class_path", "tests.data.own_datamodule.Stripes",
            "--data.batch_real", "4", "--trainer.max_steps", "3", "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--model.artifact_path",
            str(tmp_path / "s.pt"), "--trainer.default_root_dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", ["lightning-dd", *argv])
    main(argv)
    d = DistilledSet.load(tmp_path / "s.pt")
    assert (d.dataset, d.class_names, d.image_shape, d.ipc) == ("stripes", ("horizontal", "vertical"), (1, 8, 8), 2)
