"""MTT on the embedded digits dataset: the learned step size (exported, used by evaluation), one optimizer with two
groups, plain = constant-memory unroll, guards, buffer checks, nothing of the buffer in checkpoints, resume, CMI
through the hook, and `experts` + `fit` through the command line."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_dd.artifact import DistilledSet
from lightning_dd.augment.zca import ZCA
from lightning_dd.cli import main
from lightning_dd.data import RealDataModule
from lightning_dd.data.protocol import NO_REAL_IMAGES
from lightning_dd.evaluation import loop as eval_loop
from lightning_dd.evaluation import run as eval_run
from lightning_dd.evaluation.loop import train_student
from lightning_dd.evaluation.protocol import StudentRecipe
from lightning_dd.evaluation.run import evaluate_artifact
from lightning_dd.methods import MTT
from lightning_dd.methods.mtt import UNROLLS
from lightning_dd.pretrained import ExpertBuffer, expert_path, to_proxy_input
from lightning_dd.regularizers import CMIRegularizer
from tests.helpers import digits_data, digits_experts, quiet_trainer

LR_TEACHER = 0.01


@pytest.fixture(scope="module")
def buffer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two digits experts x 3 epochs on 20 images per class (normalised space)."""
    return digits_experts(tmp_path_factory.mktemp("experts"))


def tiny(buffer_dir: Path, **kwargs: Any) -> MTT:
    defaults: dict[str, Any] = {"ipc": 2, "num_classes": 10, "image_shape": (1, 8, 8), "artifact_path": "",
                                "expert_buffer": str(buffer_dir), "syn_steps": 3, "expert_epochs": 1,
                                "max_start_epoch": 2, "lr_teacher": LR_TEACHER, "lr_lr": 1e-5, "batch_syn": 8,
                                "optimizer": lambda p: torch.optim.SGD(p, lr=10.0, momentum=0.5)}
    defaults.update(kwargs)
    return MTT(**defaults)


def fit(model: MTT, root: Path, steps: int, data: RealDataModule | None = None, **kwargs: Any) -> None:
    quiet_trainer(root, max_steps=steps, **kwargs).fit(model, data or digits_data(iterations_per_epoch=3))


@pytest.fixture(scope="module")
def fitted(buffer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[MTT, Path, torch.Tensor]:
    """A 3-iteration MTT fit that exports its artifact: (model, artifact path, initial images)."""
    root = tmp_path_factory.mktemp("mtt_fit")
    model = tiny(buffer_dir, artifact_path=str(root / "mtt.pt"))
    init = {}

    class Record(L.Callback):
        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            init["images"] = model.synthetic.images.detach().clone()

    fit(model, root, 3, callbacks=[Record()])
    return model, root / "mtt.pt", init["images"]


def test_a_fit_learns_the_step_size_in_one_optimizer_and_exports_it(fitted: tuple) -> None:
    model, artifact, init = fitted
    assert model.trainer.global_step == 3 and model.iteration == 3  # one optimizer step per iteration
    optimizer = model.optimizers().optimizer
    assert isinstance(optimizer, torch.optim.SGD) and len(model.trainer.optimizers) == 1
    (group_images, group_lr) = optimizer.param_groups
    assert group_images["params"] == [model.synthetic.images] and group_images["lr"] == 10.0
    assert group_lr["params"] == [model.synthetic.lr] and group_lr["lr"] == 1e-5
    assert group_images["momentum"] == group_lr["momentum"] == 0.5
    learned = float(model.synthetic.lr.detach())
    assert learned > 0 and abs(learned - LR_TEACHER) > 1e-4  # it moved (clearly: lr_lr 1e-5, gradients ~1e2)
    assert not torch.equal(model.synthetic.images.detach(), init)
    assert model.real_demand() == NO_REAL_IMAGES
    assert len(model.buffer) == 2 and model.buffer.epochs == 3
    distilled = DistilledSet.load(artifact)
    assert distilled.lr == pytest.approx(learned, rel=1e-6) and distilled.method == "MTT"
    assert torch.equal(distilled.images, model.synthetic.images.detach())
    assert distilled.hparams["syn_steps"] == 3 and distilled.hparams["unroll"] == "plain"


def test_evaluation_trains_students_with_the_learned_step_size(fitted: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both evaluation paths (the in-run loop and `lightning-dd evaluate`) hand the artifact's lr to the student's
    SGD unless told otherwise."""
    _, artifact, _ = fitted
    distilled = DistilledSet.load(artifact)
    assert distilled.lr is not None and abs(distilled.lr - StudentRecipe().lr) > 1e-4  # tells the two apart
    used: list[float] = []
    real_fit = eval_loop.fit_classifier

    def spy(net: Any, images: Any, labels: Any, recipe: Any, *args: Any, **kwargs: Any) -> Any:
        used.append(recipe.lr)
        return real_fit(net, images, labels, recipe, *args, **kwargs)

    monkeypatch.setattr(eval_loop, "fit_classifier", spy)
    data = RealDataModule("digits")
    test = data.test_split()
    x, y = data.normalize(test.images[:50]), test.labels[:50]
    recipe = StudentRecipe(epochs=2, dsa_strategy="none")
    by_default = train_student(distilled, x, y, recipe=recipe)
    explicit = train_student(distilled, x, y, recipe=dataclasses.replace(recipe, lr=distilled.lr, use_learned_lr=False))
    train_student(distilled, x, y, recipe=dataclasses.replace(recipe, use_learned_lr=False))
    assert used == [distilled.lr, distilled.lr, recipe.lr]
    assert by_default == explicit  # the same student
    # evaluate_artifact: the students' optimizer starts at the learned lr
    lrs: list[float] = []

    class Student(eval_run.StudentClassifier):
        def configure_optimizers(self) -> Any:
            config = super().configure_optimizers()
            lrs.append(config["optimizer"].param_groups[0]["lr"])
            return config

    monkeypatch.setattr(eval_run, "StudentClassifier", Student)
    result = evaluate_artifact(artifact, runs=1, epochs=2, trainer_kwargs={"accelerator": "cpu"})  # decay at 1
    assert lrs == [pytest.approx(distilled.lr)] and result["method"] == "MTT"


def test_an_mtt_iteration_has_the_same_gradients_with_both_unrolls_in_float64(buffer_dir: Path,
                                                                             tmp_path: Path) -> None:
    """MTT's own step plan (minibatches, per-image DSA with align_corners) is replayed exactly by the
    constant-memory backward: images and step-size gradients of one iteration agree in float64."""
    model = tiny(buffer_dir)
    fit(model, tmp_path, 1)
    assert not model.dsa.is_identity and model.dsa.align_corners
    images, labels = model.synthetic.decode()
    start, target, _, _ = model.draw_segment(torch.device("cpu"))
    state = model.generator.get_state()
    grads = {}
    for unroll in UNROLLS:
        model.generator.set_state(state)
        model.unroll = unroll
        x = images.detach().double().requires_grad_(True)
        loss = model.trajectory_loss(x, labels, start.double(), target.double())
        grads[unroll] = (loss.detach(), *torch.autograd.grad(loss, (x, model.synthetic.lr)))
    plain, constant = grads["plain"], grads["constant_memory"]
    assert plain[1].abs().sum() > 0 and plain[2].abs() > 0
    assert float((constant[0] - plain[0]).abs()) <= 1e-12 * float(plain[0])
    assert float((constant[1] - plain[1]).norm() / plain[1].norm()) <= 1e-6
    assert float((constant[2] - plain[2]).abs() / plain[2].abs()) <= 1e-5  # lr is float32: its gradient too


def test_plain_and_constant_memory_fits_agree(buffer_dir: Path, fitted: tuple, tmp_path: Path) -> None:
    """Two iterations from the same seed: the same images and step size up to float32 rounding."""
    _, _, init = fitted  # MTT's init="real" images for seed 0
    runs = {}
    for unroll in UNROLLS:
        model = tiny(buffer_dir, unroll=unroll, optimizer=lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.5))
        fit(model, tmp_path / unroll, 2)
        runs[unroll] = (model.synthetic.images.detach() - init, float(model.synthetic.lr.detach()) - LR_TEACHER)
    (step_plain, lr_plain), (step_constant, lr_constant) = runs["plain"], runs["constant_memory"]
    assert step_plain.norm() > 1.0 and abs(lr_plain) > 1e-4  # both moved
    assert (step_plain - step_constant).norm() <= 1e-3 * step_plain.norm()
    assert torch.allclose(step_constant, step_plain, atol=1e-2 * float(step_plain.abs().max()))
    assert lr_constant == pytest.approx(lr_plain, rel=1e-3)


def test_resume_equals_the_uninterrupted_run(buffer_dir: Path, tmp_path: Path) -> None:
    straight = tiny(buffer_dir)
    fit(straight, tmp_path / "straight", 4)
    first = tiny(buffer_dir)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    fit(first, tmp_path / "first", 2, callbacks=[ckpt], enable_checkpointing=True)
    checkpoint = torch.load(tmp_path / "ckpt" / "epoch=0-step=2.ckpt", weights_only=False)
    # the expert buffer and the student network are plain attributes: nothing of them is checkpointed
    assert set(checkpoint["state_dict"]) == {"synthetic.images", "synthetic.labels", "synthetic.lr"}
    assert set(first.state_dict()) == set(checkpoint["state_dict"])
    assert not any(isinstance(m, torch.nn.Conv2d) for m in first.modules())
    assert first.buffer is not None and first.student.num_parameters > 0
    resumed = tiny(buffer_dir)
    quiet_trainer(tmp_path / "resumed", max_steps=4).fit(resumed, digits_data(iterations_per_epoch=3),
                                                         ckpt_path=str(tmp_path / "ckpt" / "epoch=0-step=2.ckpt"))
    assert resumed.trainer.global_step == 4
    assert torch.equal(resumed.synthetic.images, straight.synthetic.images)
    assert torch.equal(resumed.synthetic.lr, straight.synthetic.lr)
    assert not torch.equal(first.synthetic.images, straight.synthetic.images)  # the last two iterations did work


class AtIteration(L.Callback):
    """At the start of iteration ``at``: NaN into an image, or the step-size group's lr raised to ``lr_lr``."""

    def __init__(self, at: int, nan: bool = False, lr_lr: float | None = None) -> None:
        self.at, self.nan, self.lr_lr = at, nan, lr_lr
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if pl_module.iteration != self.at:
            return
        if self.nan:
            with torch.no_grad():
                pl_module.synthetic.images[0] = float("nan")
        if self.lr_lr is not None:
            trainer.optimizers[0].param_groups[1]["lr"] = self.lr_lr

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
        self.lrs.append(float(pl_module.synthetic.lr.detach()))


def test_a_nan_loss_stops_the_run_naming_the_iteration(buffer_dir: Path, tmp_path: Path) -> None:
    model = tiny(buffer_dir, artifact_path=str(tmp_path / "mtt.pt"))
    with pytest.raises(FloatingPointError, match="MTT: the distillation loss became NaN or infinite at or before "
                                                 "iteration 2;"):
        fit(model, tmp_path, 4, callbacks=[AtIteration(2, nan=True)])
    assert model.iteration == 2 and not (tmp_path / "mtt.pt").exists()  # stopped there, nothing exported


def test_a_step_size_driven_below_zero_raises_naming_the_iteration(buffer_dir: Path, tmp_path: Path) -> None:
    model = tiny(buffer_dir, artifact_path=str(tmp_path / "mtt.pt"))
    hook = AtIteration(2, lr_lr=1.0)
    with pytest.raises(FloatingPointError, match=r"MTT: the learned step size became -\S+ \(<= 0\) at or before "
                                                 r"iteration 2; lower model.lr_lr, or pass model.lr_guard=clamp"):
        fit(model, tmp_path, 4, callbacks=[hook])
    assert len(hook.lrs) == 2 and all(lr > 0 for lr in hook.lrs)  # iterations 0 and 1 were fine
    assert float(model.synthetic.lr.detach()) < 0 and not (tmp_path / "mtt.pt").exists()


def test_a_clamped_step_size_stays_at_min_lr(buffer_dir: Path, tmp_path: Path) -> None:
    model = tiny(buffer_dir, lr_guard="clamp", min_lr=1e-4, artifact_path=str(tmp_path / "mtt.pt"))
    hook = AtIteration(2, lr_lr=1.0)
    fit(model, tmp_path, 4, callbacks=[hook])
    assert model.trainer.global_step == 4
    assert len(hook.lrs) == 4 and hook.lrs[0] > 1e-3 and hook.lrs[2] == pytest.approx(1e-4)  # clamped at 2
    assert min(hook.lrs) >= 1e-4 * (1 - 1e-6)
    assert DistilledSet.load(tmp_path / "mtt.pt").lr == pytest.approx(hook.lrs[-1])


def test_the_step_size_guard_unit(buffer_dir: Path) -> None:
    model = tiny(buffer_dir)
    model.guard_lr()  # positive: nothing happens
    with torch.no_grad():
        model.synthetic.lr.fill_(-0.5)
    with pytest.raises(FloatingPointError, match=r"step size became -0.5 \(<= 0\) at or before iteration 0"):
        model.guard_lr()
    clamped = tiny(buffer_dir, lr_guard="clamp", min_lr=1e-4)
    with torch.no_grad():
        clamped.synthetic.lr.fill_(-0.5)
    clamped.guard_lr()
    assert float(clamped.synthetic.lr.detach()) == pytest.approx(1e-4)


def rewritten(buffer_dir: Path, out: Path, info: dict[str, Any] | None = None, **changes: Any) -> Path:
    """A copy of the buffer with header fields (``dataset``, ``space``, ...) and ``info`` entries changed."""
    out.mkdir()
    for k in range(2):
        shard = ExpertBuffer.load(expert_path(buffer_dir, k))
        header = {"network": shard.network, "dataset": shard.dataset, "image_shape": shard.image_shape,
                  "num_classes": shard.num_classes, "mean": shard.mean, "std": shard.std, "space": shard.space,
                  "info": {**shard.info, **(info or {})}, **changes}
        ExpertBuffer(shard.entries, **header).save(expert_path(out, k))
    return out


@pytest.mark.parametrize(
    ("kwargs", "data", "changes", "message"),
    [
        ({"max_start_epoch": 2, "expert_epochs": 3}, {}, {}, r"3 epochs per expert \(run needs .*= 4\)"),
        ({"max_start_epoch": 4, "expert_epochs": 1}, {}, {}, r"3 epochs per expert \(run needs .*= 4\)"),
        ({"network": "convnet_d2"}, {}, {}, r"network 'convnet' \(run: 'convnet_d2'\)"),
        ({"space": "zca"}, {"space": "zca"}, {}, r"image space 'normalized' \(run: 'zca'\)"),
        ({}, {}, {"dataset": "mnist"}, r"dataset 'mnist' \(run: 'digits'\)"),
        ({"space": "zca"}, {"space": "zca"}, {"space": "zca", "info": {"zca": "0123456789abcdef"}},
         r"ZCA '0123456789abcdef' \(run: '[0-9a-f]{16}'\)"),
    ],
)
def test_a_buffer_that_does_not_fit_the_run_is_refused(buffer_dir: Path, tmp_path: Path, kwargs: dict,
                                                        data: dict, changes: dict, message: str) -> None:
    directory = rewritten(buffer_dir, tmp_path / "buffer", **changes) if changes else buffer_dir
    model = tiny(directory, **kwargs)
    with pytest.raises(ValueError, match=rf"expert buffer .* was made for .*{message}.*lightning-dd experts"):
        fit(model, tmp_path, 1, data=RealDataModule("digits", iterations_per_epoch=3, **data))
    assert model.iteration == 0


def test_a_buffer_that_fits_exactly_is_accepted_and_max_experts_reads_fewer(buffer_dir: Path, tmp_path: Path) -> None:
    model = tiny(buffer_dir, max_start_epoch=2, expert_epochs=2, max_experts=1)  # needs epochs 0..3: all of them
    fit(model, tmp_path, 1)
    assert len(model.buffer) == 1 and model.trainer.global_step == 1
    with pytest.raises(FileNotFoundError, match="lightning-dd experts --output"):
        fit(tiny(tmp_path / "nowhere"), tmp_path, 1)


def test_bad_arguments_are_named(buffer_dir: Path) -> None:
    with pytest.raises(ValueError, match="syn_steps must be an integer >= 1, got 0"):
        tiny(buffer_dir, syn_steps=0)
    with pytest.raises(ValueError, match="lr_lr must be a finite number > 0, got -1"):
        tiny(buffer_dir, lr_lr=-1)
    with pytest.raises(ValueError, match="lr_teacher must be a finite number > 0, got 0"):
        tiny(buffer_dir, lr_teacher=0)
    with pytest.raises(ValueError, match=r"unroll must be one of \('plain', 'constant_memory'\), got 'tesla'"):
        tiny(buffer_dir, unroll="tesla")
    with pytest.raises(ValueError, match="lr_guard must be 'raise' or 'clamp', got 'ignore'"):
        tiny(buffer_dir, lr_guard="ignore")
    with pytest.raises(ValueError, match="cannot use BatchNorm"):
        tiny(buffer_dir, network="convnet_bn")


def test_cmi_attaches_through_the_hook(buffer_dir: Path, tmp_path: Path, pool_path: Path) -> None:
    pool = str(pool_path)
    plain, zero, weighted = (tiny(buffer_dir), tiny(buffer_dir, regularizers=[CMIRegularizer(pool, weight=0)]),
                             tiny(buffer_dir, regularizers=[CMIRegularizer(pool, weight=100.0)]))
    for name, model in (("plain", plain), ("zero", zero), ("weighted", weighted)):
        fit(model, tmp_path / name, 2)
    assert torch.equal(zero.synthetic.images, plain.synthetic.images)
    assert torch.equal(zero.synthetic.lr, plain.synthetic.lr)
    assert not torch.allclose(weighted.synthetic.images, plain.synthetic.images)
    assert len(weighted.regularizers) == len(zero.regularizers) == 1 and len(plain.regularizers) == 0


def test_zca_images_reach_a_normalised_proxy_through_the_inverse() -> None:
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(64, 3, 4, 4, generator=g)
    zca = ZCA.fit(pixels)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    whitened = zca.transform(pixels[:5]).requires_grad_(True)
    got = to_proxy_input(whitened, "zca", mean, std, zca=zca)
    expected = (pixels[:5] - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert not torch.allclose(whitened, expected, atol=1e-2)  # the mapping is not the identity
    assert torch.allclose(got, expected, atol=1e-4)
    got.sum().backward()  # differentiable: CMI's gradient reaches ZCA-space images
    assert whitened.grad is not None and whitened.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="space 'zca' need the run's ZCA"):
        to_proxy_input(pixels[:5], "zca", mean, std)
    assert to_proxy_input(whitened, "zca", mean, std, target_space="zca") is whitened  # a ZCA pool takes them


@pytest.fixture
def _argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["lightning-dd"])


@pytest.mark.usefixtures("_argv")
def test_experts_then_fit_through_the_cli_in_zca_space(tmp_path: Path, pool_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    experts = tmp_path / "experts"
    capsys.readouterr()
    main(["experts", "--output", str(experts), "--space", "zca", "--num_experts", "2", "--epochs", "2",
          "--max_images_per_class", "10", "--batch_size", "32"])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1  # one JSON line on stdout (progress goes to stderr)
    result = json.loads(out[0])
    assert result["experts"] == ["expert_00000.pt", "expert_00001.pt"] and result["space"] == "zca"
    assert (result["dataset"], result["epochs"], result["train_images"]) == ("digits", 2, 100)
    assert ExpertBuffer.load(experts / "expert_00001.pt").info["zca"] is not None
    base = ["fit", "--model", "lightning_dd.methods.MTT", "--data.dataset", "digits", "--data.space", "zca",
            "--model.ipc", "2", "--model.expert_buffer", str(experts), "--model.syn_steps", "2",
            "--model.expert_epochs", "1", "--model.max_start_epoch", "1", "--model.unroll", "constant_memory",
            "--model.optimizer", "torch.optim.SGD", "--model.optimizer.lr", "10", "--model.optimizer.momentum", "0.5",
            "--trainer.max_steps", "2", "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.callbacks=[]"]
    cmi = ["--model.regularizers+=lightning_dd.regularizers.CMIRegularizer", "--model.regularizers.pool",
           str(pool_path), "--model.regularizers.weight", "10"]
    for name, extra in (("plain", []), ("cmi", cmi)):
        main([*base, "--trainer.default_root_dir", str(tmp_path / name), *extra])
        (path,) = (tmp_path / name).glob("**/distilled.pt")
        d = DistilledSet.load(path)
        assert (d.method, d.space, d.ipc) == ("MTT", "zca", 2) and d.zca is not None
        assert d.lr is not None and d.lr > 0 and d.lr != LR_TEACHER
        assert d.hparams["unroll"] == "constant_memory"
        classes = [r["class_path"].rsplit(".", 1)[1] for r in d.hparams.get("regularizers") or []]
        assert classes == ([] if name == "plain" else ["CMIRegularizer"])
