"""MTT on the embedded digits dataset: the learned step size, one optimizer with two groups, plain = constant-memory
unroll, guards, buffer checks, resume, CMI through the hook, and `experts` + `fit` through the command line."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_dd.artifact import DistilledSet
from lightning_dd.augment.zca import ZCA
from lightning_dd.cli import main
from lightning_dd.data import RealDataModule
from lightning_dd.data.protocol import NO_REAL_IMAGES
from lightning_dd.evaluation.loop import train_student
from lightning_dd.evaluation.protocol import StudentRecipe
from lightning_dd.methods import MTT, RandomSelection
from lightning_dd.pretrained import EXPERT_RECIPE, to_proxy_input, train_experts
from lightning_dd.regularizers import CMIRegularizer
from tests.helpers import digits_data, quiet_trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def buffer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two digits experts x 3 epochs on 20 images per class (normalised space)."""
    data = RealDataModule("digits")
    store = data.load_train()
    idx = torch.cat([i[:20] for i in store.indices_by_class])
    out = tmp_path_factory.mktemp("experts")
    recipe = dataclasses.replace(EXPERT_RECIPE, epochs=3, batch_size=32, dsa_strategy=data.info.dsa_strategy)
    train_experts(data.encode(store.images[idx]), store.labels[idx], out, dataset="digits", num_classes=10,
                  mean=data.mean, std=data.std, num_experts=2, recipe=recipe, seed=0, log=lambda _: None)
    return out


def tiny(buffer_dir: Path, **kwargs: Any) -> MTT:
    defaults: dict[str, Any] = {"ipc": 2, "num_classes": 10, "image_shape": (1, 8, 8), "artifact_path": "",
                                "expert_buffer": str(buffer_dir), "syn_steps": 3, "expert_epochs": 1,
                                "max_start_epoch": 2, "lr_lr": 1e-5, "batch_syn": 8,
                                "optimizer": lambda p: torch.optim.SGD(p, lr=10.0, momentum=0.5)}
    defaults.update(kwargs)
    return MTT(**defaults)


def fit(model: MTT | RandomSelection, root: Path, steps: int, data: RealDataModule | None = None,
        **kwargs: Any) -> None:
    quiet_trainer(root, max_steps=steps, **kwargs).fit(model, data or digits_data(iterations_per_epoch=3))


def test_a_fit_learns_the_step_size_in_one_optimizer_and_exports_it(buffer_dir: Path, tmp_path: Path) -> None:
    model = tiny(buffer_dir, artifact_path=str(tmp_path / "mtt.pt"))
    start = model.synthetic.images.detach().clone()
    fit(model, tmp_path, 3)
    assert model.trainer.global_step == 3 and model.iteration == 3  # one optimizer step per iteration
    (group_images, group_lr) = model.optimizers().optimizer.param_groups
    assert group_images["params"] == [model.synthetic.images] and group_images["lr"] == 10.0
    assert group_lr["params"] == [model.synthetic.lr] and group_lr["lr"] == 1e-5
    assert group_images["momentum"] == group_lr["momentum"] == 0.5
    learned = float(model.synthetic.lr.detach())
    assert learned != 0.01 and learned > 0
    assert not torch.equal(model.synthetic.images.detach(), start)
    assert model.real_demand() == NO_REAL_IMAGES
    distilled = DistilledSet.load(tmp_path / "mtt.pt")
    assert distilled.lr == pytest.approx(learned) and distilled.method == "MTT"
    # evaluation trains with the learned step size by default: the same student as with it given explicitly
    test = RealDataModule("digits").test_split()
    x, y = RealDataModule("digits").normalize(test.images), test.labels
    recipe = StudentRecipe(epochs=60)
    by_default = train_student(distilled, x, y, recipe=recipe)
    explicit = train_student(distilled, x, y, recipe=dataclasses.replace(recipe, lr=learned, use_learned_lr=False))
    assert by_default == explicit
    constant = train_student(distilled, x, y, recipe=dataclasses.replace(recipe, lr=0.1, use_learned_lr=False))
    assert constant != by_default


def test_plain_and_constant_memory_fits_agree(buffer_dir: Path, tmp_path: Path) -> None:
    """One iteration from the same state: the same image step and step-size step up to float32 rounding (the
    float64 equality of the gradients is tests/losses/test_loss_trajectory.py's)."""
    plain, constant = tiny(buffer_dir), tiny(buffer_dir, unroll="constant_memory")
    fit(plain, tmp_path / "plain", 1)
    fit(constant, tmp_path / "constant", 1)
    init = RandomSelection(ipc=2, num_classes=10, image_shape=(1, 8, 8), artifact_path="")  # MTT's init="real" set
    fit(init, tmp_path / "init", 1)  # type: ignore[arg-type]
    step_plain = plain.synthetic.images.detach() - init.synthetic.images.detach()
    step_constant = constant.synthetic.images.detach() - init.synthetic.images.detach()
    assert step_plain.norm() > 0
    assert (step_plain - step_constant).norm() <= 1e-4 * step_plain.norm()
    lr0 = 0.01
    assert float(constant.synthetic.lr - lr0) == pytest.approx(float(plain.synthetic.lr - lr0), rel=1e-4)


def test_resume_equals_the_uninterrupted_run(buffer_dir: Path, tmp_path: Path) -> None:
    straight = tiny(buffer_dir)
    fit(straight, tmp_path / "straight", 4)
    first = tiny(buffer_dir)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    fit(first, tmp_path / "first", 2, callbacks=[ckpt], enable_checkpointing=True)
    state = torch.load(tmp_path / "ckpt" / "epoch=0-step=2.ckpt", weights_only=False)["state_dict"]
    assert set(state) == {"synthetic.images", "synthetic.labels", "synthetic.lr"}  # no buffer, no student
    resumed = tiny(buffer_dir)
    quiet_trainer(tmp_path / "resumed", max_steps=4).fit(resumed, digits_data(iterations_per_epoch=3),
                                                         ckpt_path=str(tmp_path / "ckpt" / "epoch=0-step=2.ckpt"))
    assert torch.equal(resumed.synthetic.images, straight.synthetic.images)
    assert torch.equal(resumed.synthetic.lr, straight.synthetic.lr)


def test_the_step_size_guard_raises_or_clamps(buffer_dir: Path) -> None:
    model = tiny(buffer_dir)
    with torch.no_grad():
        model.synthetic.lr.fill_(-0.5)
    with pytest.raises(FloatingPointError, match=r"step size became -0.5 \(<= 0\) at or before iteration 0"):
        model.guard_lr()
    clamped = tiny(buffer_dir, lr_guard="clamp", min_lr=1e-4)
    with torch.no_grad():
        clamped.synthetic.lr.fill_(-0.5)
    clamped.guard_lr()
    assert float(clamped.synthetic.lr.detach()) == pytest.approx(1e-4)


def test_a_nan_loss_stops_the_run_naming_the_iteration(buffer_dir: Path, tmp_path: Path) -> None:
    model = tiny(buffer_dir, optimizer=lambda p: torch.optim.SGD(p, lr=1e38), lr_guard="clamp")
    with pytest.raises(FloatingPointError, match="NaN or infinite at or before iteration"):
        fit(model, tmp_path, 6)


@pytest.mark.parametrize(
    ("kwargs", "data", "message"),
    [
        ({"max_start_epoch": 2, "expert_epochs": 3}, {}, r"3 epochs per expert \(run needs max_start_epoch \+ "
                                                        r"expert_epochs = 4\)"),
        ({"network": "convnet_d2"}, {}, r"network 'convnet' \(run: 'convnet_d2'\)"),
        ({"space": "zca"}, {"space": "zca"}, r"image space 'normalized' \(run: 'zca'\)"),
    ],
)
def test_a_buffer_that_does_not_fit_the_run_is_refused(buffer_dir: Path, tmp_path: Path, kwargs: dict,
                                                        data: dict, message: str) -> None:
    model = tiny(buffer_dir, **kwargs)
    with pytest.raises(ValueError, match=message):
        fit(model, tmp_path, 1, data=RealDataModule("digits", iterations_per_epoch=3, **data))


def test_bad_arguments_are_named(buffer_dir: Path) -> None:
    with pytest.raises(ValueError, match="syn_steps must be an integer >= 1, got 0"):
        tiny(buffer_dir, syn_steps=0)
    with pytest.raises(ValueError, match="lr_lr must be a finite number > 0, got -1"):
        tiny(buffer_dir, lr_lr=-1)
    with pytest.raises(ValueError, match=r"unroll must be one of \('plain', 'constant_memory'\), got 'tesla'"):
        tiny(buffer_dir, unroll="tesla")
    with pytest.raises(ValueError, match="lr_guard must be 'raise' or 'clamp', got 'ignore'"):
        tiny(buffer_dir, lr_guard="ignore")


def test_cmi_attaches_through_the_hook(buffer_dir: Path, tmp_path: Path, pool_path: Path) -> None:
    plain, zero, weighted = (tiny(buffer_dir), tiny(buffer_dir, regularizers=[CMIRegularizer(pool_path, weight=0)]),
                             tiny(buffer_dir, regularizers=[CMIRegularizer(pool_path, weight=100.0)]))
    for name, model in (("plain", plain), ("zero", zero), ("weighted", weighted)):
        fit(model, tmp_path / name, 2)
    assert torch.equal(zero.synthetic.images, plain.synthetic.images)
    assert torch.equal(zero.synthetic.lr, plain.synthetic.lr)
    assert not torch.allclose(weighted.synthetic.images, plain.synthetic.images)


def test_zca_images_reach_a_normalised_proxy_through_the_inverse() -> None:
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(64, 3, 4, 4, generator=g)
    zca = ZCA.fit(pixels)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    got = to_proxy_input(zca.transform(pixels[:5]), "zca", mean, std, zca=zca)
    expected = (pixels[:5] - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(got, expected, atol=1e-4)
    with pytest.raises(ValueError, match="space 'zca' need the run's ZCA"):
        to_proxy_input(pixels[:5], "zca", mean, std)


@pytest.fixture
def _argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["lightning-dd"])


@pytest.mark.usefixtures("_argv")
def test_experts_then_fit_through_the_cli_in_zca_space(tmp_path: Path, pool_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    experts = tmp_path / "experts"
    main(["experts", "--output", str(experts), "--space", "zca", "--num_experts", "2", "--epochs", "2",
          "--max_images_per_class", "10", "--batch_size", "32"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["experts"] == ["expert_00000.pt", "expert_00001.pt"] and result["space"] == "zca"
    base = ["fit", "--config", str(CONFIGS / "method" / "mtt.yaml"), "--data.dataset", "digits", "--data.space",
            "zca", "--model.ipc", "2", "--model.expert_buffer", str(experts), "--model.syn_steps", "2",
            "--model.expert_epochs", "1", "--model.max_start_epoch", "1", "--model.optimizer.lr", "10",
            "--trainer.max_steps", "2", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.callbacks=[]"]
    for name, extra in (("plain", []), ("cmi", ["--config", str(CONFIGS / "regularizers" / "cmi.yaml"),
                                                "--model.regularizers.pool", str(pool_path),
                                                "--model.regularizers.weight", "10"])):
        main([*base, "--trainer.default_root_dir", str(tmp_path / name), *extra])
        (path,) = (tmp_path / name).glob("**/distilled.pt")
        d = DistilledSet.load(path)
        assert (d.method, d.space, d.ipc) == ("MTT", "zca", 2) and d.zca is not None
        assert d.lr is not None and d.lr > 0
