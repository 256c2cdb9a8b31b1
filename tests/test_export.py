"""``lightning-dd export``: lossless tensors, class-ordered image folders, DD-Ranking's normalisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torchvision.datasets import ImageFolder
from torchvision.transforms.functional import pil_to_tensor

from lightning_dd.artifact import DistilledSet
from lightning_dd.cli import main
from lightning_dd.commands.export import DD_RANKING_STATS, pixel_images

NAMES = ("zebra", "apple", "mango")  # not alphabetical: label order must survive ImageFolder's sorting
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def artifact(tmp_path: Path, dataset: str = "image_folder", lr: float | None = 0.02) -> Path:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(6, 3, 4, 4, generator=g) * 2  # normalised; some pixels fall outside [0, 1]
    d = DistilledSet(images=images, labels=torch.tensor([0, 0, 1, 1, 2, 2]), dataset=dataset, class_names=NAMES,
                     mean=MEAN, std=STD, method="DM", ipc=2, seed=0, lr=lr)
    return d.save(tmp_path / "d.pt")


def export(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    main(["export", *args])
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    return json.loads(line)


def test_tensors_export_is_the_exact_pixel_inverse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = artifact(tmp_path)
    result = export(["--distilled", str(path), "--to", "tensors", "--directory", str(tmp_path / "t")], capsys)
    d = DistilledSet.load(path)
    images = torch.load(tmp_path / "t" / "images.pt", weights_only=True)
    expected = d.images * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    assert torch.equal(images, pixel_images(d)) and images.dtype == torch.float32
    torch.testing.assert_close(images, expected, rtol=0, atol=1e-6)
    assert torch.equal(torch.load(tmp_path / "t" / "labels.pt", weights_only=True), d.labels)
    assert float(torch.load(tmp_path / "t" / "lr.pt", weights_only=True)) == pytest.approx(0.02)
    outside = int(((expected < 0) | (expected > 1)).sum())
    assert outside > 0 and result["values_outside_0_1"] == outside  # reported, not clipped
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    assert meta["class_names"] == list(NAMES) and meta["lr"] == pytest.approx(0.02)


def test_image_folder_export_keeps_the_label_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = artifact(tmp_path)
    out = tmp_path / "folder"
    result = export(["--distilled", str(path), "--to", "image_folder", "--directory", str(out)], capsys)
    folder = ImageFolder(str(out / "train"))
    assert folder.classes == ["000_zebra", "001_apple", "002_mango"]
    labels = [label for _, label in folder.samples]
    assert labels == DistilledSet.load(path).labels.tolist()
    pixels = pixel_images(DistilledSet.load(path))
    assert result["values_clipped"] == int(((pixels < 0) | (pixels > 1)).sum()) > 0
    first = pil_to_tensor(folder.loader(folder.samples[0][0]))
    assert torch.equal(first, (pixels[0].clamp(0, 1) * 255).round().to(torch.uint8))


def test_dd_ranking_export_uses_its_statistics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = artifact(tmp_path, dataset="cifar100")
    result = export(["--distilled", str(path), "--to", "dd_ranking", "--directory", str(tmp_path / "r")], capsys)
    _, mean, std = DD_RANKING_STATS["cifar100"]
    assert (result["dd_ranking_dataset"], tuple(result["mean"])) == ("CIFAR100", mean)
    assert mean == DD_RANKING_STATS["cifar10"][1]  # DD-Ranking normalises CIFAR-100 with CIFAR-10's statistics
    images = torch.load(tmp_path / "r" / "images.pt", weights_only=True)
    pixels = pixel_images(DistilledSet.load(path))
    torch.testing.assert_close(images * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1),
                               pixels)


def test_dd_ranking_refuses_a_dataset_it_does_not_know(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = artifact(tmp_path, dataset="digits")
    with pytest.raises(SystemExit) as info:
        main(["export", "--distilled", str(path), "--to", "dd_ranking", "--directory", str(tmp_path / "x")])
    assert info.value.code == 2
    assert "DD-Ranking has no 'digits'; it takes cifar10, cifar100, tiny_imagenet" in capsys.readouterr().err


def test_every_command_has_help_config_and_print_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lightning_dd.commands import COMMANDS

    path = artifact(tmp_path)
    config = tmp_path / "export.yaml"
    config.write_text(f"distilled: {path}\nto: tensors\ndirectory: {tmp_path / 'c'}\n")
    with pytest.raises(SystemExit) as info:
        main(["export", "--config", str(config), "--print_config"])
    assert info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert f"distilled: {path}" in printed and "to: tensors" in printed
    export(["--config", str(config)], capsys)  # the config runs
    assert (tmp_path / "c" / "images.pt").is_file()
    for name in COMMANDS:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code in (0, None)
        out = capsys.readouterr().out
        assert f"usage: lightning-dd {name}" in out and "--config" in out and "--print_config" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    overview = capsys.readouterr().out
    assert all(f"  {name}" in overview for name in ("fit", *COMMANDS))
    assert "validate" not in overview and "predict" not in overview
