"""The iteration protocol: a method with 3 image steps per iteration; everything that means "iteration" follows
iterations (Lightning's batch progress), not ``global_step`` (optimizer steps)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger, Logger
from torch import Tensor

from lightning_dd.callbacks import DistilledSetEvaluator, ExportDistilledSet, RegularizerSchedule
from lightning_dd.methods import MatchingModule, Views
from lightning_dd.regularizers import Regularizer, RegularizerContext
from tests.helpers import digits_data, quiet_trainer

STEPS = 3


class ThreeSteps(MatchingModule):
    """Pulls the images towards the real batch's class means, in 3 image steps per iteration."""

    method_name = "three_steps"
    image_steps_per_iteration = STEPS

    def match(self, real: Tensor) -> tuple[Tensor, Views]:
        target = real.mean(dim=1).repeat_interleave(self.ipc, dim=0)
        return ((self.synthetic.images - target) ** 2).mean(), Views()

    def distill_step(self, batch: tuple[Tensor, Tensor]) -> None:
        real = self.real_by_class(batch)
        for _ in range(STEPS):
            loss, views = self.match(real)
            self.image_step(loss, views)


class Probe(Regularizer):
    """Weight-0 term that records the iteration and λ scale it is computed at."""

    def __init__(self, every_n_steps: int = 1) -> None:
        super().__init__({"probe": 0.0}, every_n_steps)
        self.seen: list[tuple[int, float]] = []

    def terms(self, ctx: RegularizerContext) -> dict[str, Tensor]:
        self.seen.append((ctx.iteration, self.scale))
        return {"probe": ctx.synthetic.square().mean()}


class CountingEvaluator(DistilledSetEvaluator):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[int] = []

    def evaluate(self, trainer, module, distilled, step):  # type: ignore[no-untyped-def]
        self.calls.append(step)
        return super().evaluate(trainer, module, distilled, step)


def model(**kwargs: Any) -> ThreeSteps:
    defaults: dict[str, Any] = {"ipc": 1, "num_classes": 10, "image_shape": (1, 8, 8), "artifact_path": "",
                                "optimizer": lambda p: torch.optim.SGD(p, lr=0.1)}
    return ThreeSteps(**{**defaults, **kwargs})


def rows(log_dir: Path) -> list[dict[str, str]]:
    with open(log_dir / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def steps_with(table: list[dict[str, str]], key: str) -> list[int]:
    return [int(r["step"]) for r in table if r.get(key)]


@pytest.mark.parametrize("iterations", [4, 5])
def test_everything_that_means_iteration_follows_iterations(iterations: int, tmp_path: Path) -> None:
    probe = Probe(every_n_steps=2)
    schedule = RegularizerSchedule(probe, warmup_iterations=4)
    evaluator = CountingEvaluator(every_n_steps=2, num_students=1, epochs=1, compare_random=False, output="")
    export = ExportDistilledSet(path=str(tmp_path / "set.pt"), grid_every_n_iterations=2)
    logger = CSVLogger(tmp_path, name="log", version=0)
    trainer = quiet_trainer(tmp_path, max_steps=STEPS * iterations, logger=logger, log_every_n_steps=1,
                            callbacks=[schedule, evaluator, export])
    m = model()
    trainer.fit(m, digits_data(iterations_per_epoch=100))

    assert trainer.global_step == STEPS * iterations  # optimizer steps
    assert m.iteration == iterations  # iterations
    # regularizer context + every_n_steps: computed at iterations 0, 2, 4, once per image step of those iterations
    active = [t for t in range(iterations) if t % 2 == 0]
    assert [t for t, _ in probe.seen] == [t for t in active for _ in range(STEPS)]
    # λ warm-up by iteration: scale (t + 1) / 4 at iteration t, the same for the 3 steps of an iteration
    assert [s for _, s in probe.seen] == [min(1.0, (t + 1) / 4) for t in active for _ in range(STEPS)]
    # image grids every 2 iterations
    expected_grids = [f"iteration_{t:06d}.png" for t in range(2, iterations + 1, 2)]
    logdir = Path(trainer.log_dir or tmp_path)
    grids = sorted(p.name for p in (logdir / "images").iterdir())
    assert grids == expected_grids
    assert (tmp_path / "set.png").is_file() and (tmp_path / "set.pt").is_file()
    # in-run evaluation every 2 iterations; the final iteration is evaluated once (reused when it was just done)
    periodic = list(range(2, iterations + 1, 2))
    assert evaluator.calls == periodic + ([] if iterations % 2 == 0 else [iterations])
    logger.save()
    table = rows(logdir)
    assert steps_with(table, "eval/acc_mean") == periodic  # logged where it ran, never re-logged later
    assert steps_with(table, "eval/final/three_steps/convnet/acc_mean") == [iterations]


def test_hparams_yaml_is_plain_yaml(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path, name="log", version=0)
    trainer = quiet_trainer(tmp_path, max_steps=STEPS, logger=logger)
    trainer.fit(model(), digits_data())
    loaded = yaml.safe_load((Path(trainer.log_dir) / "hparams.yaml").read_text())
    assert loaded["ipc"] == 1 and loaded["image_shape"] == [1, 8, 8]


def test_a_method_must_implement_distill_step() -> None:
    class Incomplete(MatchingModule):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(ipc=1, num_classes=10, image_shape=(1, 8, 8))


class ImageRecorder(Logger):
    """A logger that takes images (like TensorBoard's) and records at which iterations it got them."""

    def __init__(self) -> None:
        super().__init__()
        self.image_steps: list[int] = []
        self.pairs: list[int] = []

    @property
    def name(self) -> str:
        return "recorder"

    @property
    def version(self) -> int:
        return 0

    @property
    def experiment(self) -> ImageRecorder:
        return self

    def add_image(self, tag: str, grid: Tensor, step: int) -> None:
        assert tag in ("synthetic_images", "initial_vs_final") and grid.dim() == 3
        if tag == "synthetic_images":
            self.image_steps.append(step)
        else:
            self.pairs.append(step)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.mark.parametrize(("iterations", "expected"), [(4, [2, 4]), (5, [2, 4, 5])])
def test_each_grid_reaches_the_logger_once(iterations: int, expected: list[int], tmp_path: Path) -> None:
    recorder = ImageRecorder()
    export = ExportDistilledSet(path=str(tmp_path / "set.pt"), grid_every_n_iterations=2)
    trainer = quiet_trainer(tmp_path, max_steps=STEPS * iterations, logger=recorder, callbacks=[export])
    trainer.fit(model(), digits_data())
    assert recorder.image_steps == expected  # the final grid of iteration 4 is not logged a second time
    assert recorder.pairs == [iterations]  # the initial set beside the final one, once at the end
