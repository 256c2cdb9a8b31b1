"""Methods forward the base's arguments with ``**kwargs``: the CLI still shows and validates all of them."""

from __future__ import annotations

import pytest
import yaml

from lightning_dd.cli import fit_cli

BASE_SHOWN = ("ipc", "init", "optimizer", "dsa_strategy", "artifact_path", "image_grid_every_n_steps",
              "regularizers")  # num_classes, image_shape, space and seed are linked from data / seed_everything


def print_config(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    with pytest.raises(SystemExit):
        fit_cli(["--print_config", *args], run=False)
    return yaml.safe_load(capsys.readouterr().out)


def test_print_config_lists_the_base_and_the_method_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    config = print_config(capsys, "--model", "lightning_dd.methods.DM", "--model.ipc", "3")
    init_args = config["model"]["init_args"]
    assert set(BASE_SHOWN) | {"network", "classes_per_forward"} <= set(init_args)
    assert init_args["ipc"] == 3 and init_args["optimizer"]["init_args"]["lr"] == 1.0
    assert config["data"]["init_args"]["space"] == "normalized"


def test_print_config_of_the_random_baseline_omits_what_it_fixes(capsys: pytest.CaptureFixture[str]) -> None:
    init_args = print_config(capsys, "--model", "lightning_dd.methods.RandomSelection")["model"]["init_args"]
    assert {"ipc", "artifact_path"} <= set(init_args)
    assert not {"init", "dsa_strategy", "optimizer", "regularizers"} & set(init_args)


def test_model_help_is_readable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        fit_cli(["--model.help", "DM"], run=False)
    text = capsys.readouterr().out
    for option in ("--model.network", "--model.classes_per_forward", "--model.ipc", "--model.init",
                   "--model.optimizer", "--model.regularizers"):
        assert option in text
    assert "images per class" in text and "embedding network name" in text  # the docstrings, base and method
    assert "**kwargs" not in text


def test_a_bad_base_argument_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        fit_cli(["--model", "lightning_dd.methods.DM", "--model.init", "zeros", "--print_config"], run=False)
    assert "zeros" in capsys.readouterr().err
