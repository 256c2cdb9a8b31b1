"""The regularizer hook through real DM fits on digits: λ = 0 is a no-op, λ > 0 acts (and lowers CMI), the callback
and list paths agree bit for bit, resume, λ warm-up, every_n_steps, and argument validation."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor, nn

from lightning_dd.callbacks import RegularizerSchedule
from lightning_dd.losses import CMILoss
from lightning_dd.methods import DM
from lightning_dd.pretrained import ProxyPool
from lightning_dd.regularizers import CMIRegularizer, IIDRegularizer
from lightning_dd.regularizers.proxied import STREAM_PROXY_CHOICE
from lightning_dd.seeding import make_generator
from tests.helpers import digits_data, quiet_trainer, tiny_dm


def fit(
    root: Path,
    steps: int = 4,
    ipc: int = 2,
    regularizers: list | None = None,
    callbacks: list | None = None,
    seed: int = 0,
    **trainer_kwargs: Any,
) -> tuple[DM, L.Trainer]:
    model = tiny_dm(ipc=ipc, seed=seed, regularizers=regularizers)
    trainer = quiet_trainer(root, max_steps=steps, callbacks=callbacks or [], **trainer_kwargs)
    trainer.fit(model, digits_data(seed=seed))
    return model, trainer


def images(model: DM) -> Tensor:
    return model.synthetic.images.detach().clone()


def csv_fit(root: Path, **kwargs: Any) -> list[dict[str, str]]:
    """Fit with a CSVLogger writing every step; return the rows of metrics.csv."""
    logger = CSVLogger(root, name="csv")
    fit(root, logger=logger, log_every_n_steps=1, **kwargs)
    with open(Path(logger.log_dir) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def logged(rows: list[dict[str, str]], key: str) -> dict[int, float]:
    """step -> value of ``key`` in the rows where it was logged."""
    return {int(r["step"]): float(r[key]) for r in rows if r.get(key)}


def set_cmi(model: DM, pool: ProxyPool) -> float:
    """CMI of the model's images, averaged over every proxy of the pool (the `lightning-dd cmi` measurement)."""
    loss = CMILoss()
    with torch.no_grad():
        values = [
            float(loss(model.synthetic.images, model.synthetic.labels, net, model.num_classes)) for net in pool.networks
        ]
    return sum(values) / len(values)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Tensor:
    """Images of 4 DM steps on digits at IPC 2 with no regularizer."""
    model, _ = fit(tmp_path_factory.mktemp("baseline"))
    return images(model)


# ------------------------------------------------------------------------------------------------ λ = 0 / λ > 0

ZERO_WEIGHT: dict[str, Callable[[Path], list]] = {
    "cmi": lambda p: [CMIRegularizer(str(p), weight=0)],
    "iid": lambda p: [IIDRegularizer(str(p), weight_cc=0, weight_cm=0)],
    "cmi+iid": lambda p: [CMIRegularizer(str(p), weight=0), IIDRegularizer(str(p), weight_cc=0, weight_cm=0)],
}


@pytest.mark.parametrize("kind", list(ZERO_WEIGHT))
def test_zero_weight_leaves_images_bit_identical_and_still_logs(
    kind: str, pool_path: Path, baseline: Tensor, tmp_path: Path
) -> None:
    model, trainer = fit(tmp_path, regularizers=ZERO_WEIGHT[kind](pool_path))
    assert torch.equal(images(model), baseline)
    metrics = trainer.callback_metrics
    names = {"cmi": ["reg/cmi"], "iid": ["reg/iid_cc", "reg/iid_cm"]}
    for name in [n for part in kind.split("+") for n in names[part]]:
        assert name in metrics, f"{name} must be logged at weight 0"
        assert float(metrics[name]) > 0  # IPC 2: two images per class, so every term is non-zero


@pytest.mark.parametrize("kind", ["cmi", "iid"])
def test_positive_weight_changes_images(kind: str, pool_path: Path, baseline: Tensor, tmp_path: Path) -> None:
    reg = CMIRegularizer(str(pool_path), weight=1e4) if kind == "cmi" else IIDRegularizer(str(pool_path), 0.05, 0.01)
    model, _ = fit(tmp_path, regularizers=[reg])
    assert not torch.equal(images(model), baseline)
    assert torch.isfinite(images(model)).all()


def test_strong_cmi_weight_lowers_the_cmi_of_the_set(pool: ProxyPool, pool_path: Path, tmp_path: Path) -> None:
    # digits IPC 5, 5 steps: λ = 1e5 lowers the pool-mean CMI by ~40% on seeds 0-2 (the 8x8 ConvNet proxies'
    # 128-d softmax is nearly flat, CMI ~ 3e-4, hence the large λ, as in the official tables)
    plain, _ = fit(tmp_path / "plain", steps=5, ipc=5)
    regularized, _ = fit(tmp_path / "cmi", steps=5, ipc=5, regularizers=[CMIRegularizer(str(pool_path), 1e5)])
    before, after = set_cmi(plain, pool), set_cmi(regularized, pool)
    assert 0 < after < 0.8 * before, (before, after)


# ------------------------------------------------------------------------------------------------ callback vs list


def test_callback_path_equals_list_path(pool_path: Path, baseline: Tensor, tmp_path: Path) -> None:
    p = str(pool_path)
    via_list, _ = fit(tmp_path / "l1", regularizers=[CMIRegularizer(p, 1e4)])
    via_callback, trainer = fit(tmp_path / "c1", callbacks=[RegularizerSchedule(CMIRegularizer(p, 1e4))])
    assert [type(r) for r in via_callback.regularizers] == [CMIRegularizer]
    assert torch.equal(images(via_callback), images(via_list))
    assert not torch.equal(images(via_list), baseline)
    assert "reg/cmi" in trainer.callback_metrics

    iid_list, _ = fit(tmp_path / "l2", regularizers=[IIDRegularizer(p, 0.05, 0.01)])
    iid_callback, _ = fit(tmp_path / "c2", callbacks=[RegularizerSchedule(IIDRegularizer(p, 0.05, 0.01))])
    assert torch.equal(images(iid_callback), images(iid_list))
    assert not torch.equal(images(iid_list), baseline)

    both_list, _ = fit(tmp_path / "l3", regularizers=[CMIRegularizer(p, 1e4), IIDRegularizer(p, 0.05, 0.01)])
    mixed, trainer = fit(
        tmp_path / "m3",
        regularizers=[CMIRegularizer(p, 1e4)],
        callbacks=[RegularizerSchedule(IIDRegularizer(p, 0.05, 0.01))],
    )
    assert [type(r) for r in mixed.regularizers] == [CMIRegularizer, IIDRegularizer]
    assert torch.equal(images(mixed), images(both_list))
    assert not torch.equal(images(both_list), images(via_list))
    assert not torch.equal(images(both_list), images(iid_list))
    assert {"reg/cmi", "reg/iid_cc", "reg/iid_cm"} <= set(trainer.callback_metrics)


def test_callback_attaches_to_each_module_it_is_fitted_with(pool_path: Path, tmp_path: Path) -> None:
    callback = RegularizerSchedule(CMIRegularizer(str(pool_path), 1e4))
    first, _ = fit(tmp_path / "a", steps=1, callbacks=[callback])
    second, _ = fit(tmp_path / "b", steps=1, callbacks=[callback])
    assert [type(r) for r in first.regularizers] == [CMIRegularizer]
    assert [type(r) for r in second.regularizers] == [CMIRegularizer]


def test_callback_refuses_a_module_without_the_hook(pool_path: Path, tmp_path: Path) -> None:
    class Plain(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(1, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Tensor:
            return self.layer(torch.ones(1, 1)).sum()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = quiet_trainer(tmp_path, max_steps=1, callbacks=[RegularizerSchedule(CMIRegularizer(str(pool_path), 1.0))])
    with pytest.raises(TypeError, match="regularizer hook"):
        trainer.fit(Plain(), digits_data())


# ------------------------------------------------------------------------------------------------ resume


@pytest.mark.parametrize("path", ["list", "callback"])
def test_resume_from_mid_run_checkpoint_matches_uninterrupted_run(path: str, pool_path: Path, tmp_path: Path) -> None:
    # 10 iterations, 3 batches per epoch, checkpoint at 4: six proxy draws after the resume must continue the
    # checkpointed proxy-choice stream (restarting it would repeat the first draws); the warm-up needs the step
    p = str(pool_path)

    def setup() -> dict[str, Any]:
        if path == "list":
            return {"regularizers": [CMIRegularizer(p, 3e4), IIDRegularizer(p, 0.05, 0.01)]}
        return {
            "callbacks": [
                RegularizerSchedule(CMIRegularizer(p, 3e4), warmup_iterations=6),
                RegularizerSchedule(IIDRegularizer(p, 0.05, 0.01)),
            ]
        }

    def run(root: Path, steps: int, ckpt_path: str | None = None, extra: list | None = None, **kw: Any) -> DM:
        kwargs = setup()
        model = tiny_dm(ipc=2, regularizers=kwargs.get("regularizers"))
        trainer = quiet_trainer(root, max_steps=steps, callbacks=kwargs.get("callbacks", []) + (extra or []), **kw)
        trainer.fit(model, digits_data(iterations_per_epoch=3), ckpt_path=ckpt_path)
        assert trainer.global_step == steps
        return model

    straight = run(tmp_path / "straight", 10)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1)
    run(tmp_path / "first", 4, extra=[ckpt], enable_checkpointing=True)
    checkpoint = tmp_path / "ckpt" / "epoch=1-step=4.ckpt"
    saved = torch.load(checkpoint, weights_only=False)
    assert [set(s) for s in saved["lightning_dd"]["regularizers"]] == [{"generator"}, {"generator"}]
    assert not any("regularizers" in key for key in saved["state_dict"])  # no proxy weights in the checkpoint
    resumed = run(tmp_path / "resumed", 10, ckpt_path=str(checkpoint))
    assert torch.equal(images(resumed), images(straight))


def test_extending_a_finished_run_with_a_regularizer_equals_the_longer_run(pool_path: Path, tmp_path: Path) -> None:
    # the end checkpoint of a 4-step run (Lightning starts a new epoch when it resumes from it), extended to 7
    p = str(pool_path)

    def run(root: Path, steps: int, ckpt_path: str | None = None, **kw: Any) -> DM:
        model = tiny_dm(ipc=2, regularizers=[CMIRegularizer(p, 3e4), IIDRegularizer(p, 0.05, 0.01)])
        quiet_trainer(root, max_steps=steps, **kw).fit(model, digits_data(), ckpt_path=ckpt_path)
        return model

    straight = run(tmp_path / "straight", 7)
    run(tmp_path / "first", 4, enable_checkpointing=True)
    (checkpoint,) = (tmp_path / "first" / "checkpoints").glob("*.ckpt")
    extended = run(tmp_path / "extended", 7, ckpt_path=str(checkpoint))
    assert torch.equal(images(extended), images(straight))


# ------------------------------------------------------------------------------------------------ schedule


class ScaleRecorder(Callback):
    """Reads the regularizer's scale at the end of each iteration (after the schedule set it for that step)."""

    def __init__(self, regularizer: CMIRegularizer) -> None:
        self.regularizer = regularizer
        self.scales: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.scales.append(self.regularizer.scale)


def test_warmup_scales_lambda_linearly(pool_path: Path, tmp_path: Path) -> None:
    warm = RegularizerSchedule(CMIRegularizer(str(pool_path), 1e4), warmup_iterations=4)
    recorder = ScaleRecorder(warm.regularizer)  # type: ignore[arg-type]
    rows = csv_fit(tmp_path / "warm", steps=7, callbacks=[warm, recorder])
    expected = [min(1.0, (t + 1) / 4) for t in range(7)]
    assert recorder.scales == expected
    assert logged(rows, "reg/scale/CMIRegularizer") == pytest.approx(dict(enumerate(expected)))

    # the scale acts: a warm-up differs from constant λ, and warmup_steps=1 (scale 1 from step 0) is constant λ
    constant, _ = fit(tmp_path / "const", steps=7, regularizers=[CMIRegularizer(str(pool_path), 1e4)])
    one, _ = fit(
        tmp_path / "one",
        steps=7,
        callbacks=[RegularizerSchedule(CMIRegularizer(str(pool_path), 1e4), warmup_iterations=1)],
    )
    warmed, _ = fit(
        tmp_path / "warm2",
        steps=7,
        callbacks=[RegularizerSchedule(CMIRegularizer(str(pool_path), 1e4), warmup_iterations=4)],
    )
    assert torch.equal(images(one), images(constant))
    assert not torch.equal(images(warmed), images(constant))


def test_every_n_steps_computes_only_on_multiples(pool_path: Path, tmp_path: Path) -> None:
    reg = CMIRegularizer(str(pool_path), 1e4, every_n_steps=3)
    rows = csv_fit(tmp_path, steps=7, regularizers=[reg])
    assert sorted(logged(rows, "train/loss")) == list(range(7))
    # the term is logged at steps 0, 3, 6 only (Lightning's loggers re-emit a step metric's last value at the
    # following steps of the epoch, so only the steps where a new value first appears are the logged ones)
    cmi = logged(rows, "reg/cmi")
    first_seen: dict[float, int] = {}
    for step in sorted(cmi):
        first_seen.setdefault(cmi[step], step)
    assert sorted(first_seen.values()) == [0, 3, 6]
    # the proxy choice advanced once per computed step only: the run's stream drawn 3 times is in the same state
    replay = make_generator(0, STREAM_PROXY_CHOICE)
    for _ in range(3):
        ProxyPool.load(pool_path).sample(replay)
    assert torch.equal(reg.state_for_checkpoint()["generator"], replay.get_state())


# ------------------------------------------------------------------------------------------------ validation


def test_regularizers_must_be_regularizer_modules(pool_path: Path) -> None:
    with pytest.raises(TypeError, match="Regularizer"):
        tiny_dm(regularizers=[nn.Linear(2, 2)])
    with pytest.raises(TypeError, match="Regularizer"):
        tiny_dm(regularizers=[CMIRegularizer(str(pool_path), 1.0), "cmi"])


@pytest.mark.parametrize(
    "build",
    [
        lambda p: CMIRegularizer(p, weight=-1.0),
        lambda p: IIDRegularizer(p, weight_cc=-0.05),
        lambda p: IIDRegularizer(p, weight_cm=-0.01),
        lambda p: CMIRegularizer(p, weight=float("nan")),
        lambda p: CMIRegularizer(p, weight=float("inf")),
        lambda p: CMIRegularizer(p, weight=1.0, every_n_steps=0),
        lambda p: RegularizerSchedule(CMIRegularizer(p, weight=1.0), warmup_iterations=-1),
    ],
    ids=["cmi<0", "cc<0", "cm<0", "nan", "inf", "every_n_steps=0", "warmup<0"],
)
def test_bad_weights_and_schedules_are_value_errors(build: Callable[[str], object], pool_path: Path) -> None:
    with pytest.raises(ValueError, match=r">= 0|>= 1"):
        build(str(pool_path))
