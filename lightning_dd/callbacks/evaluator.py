"""Evaluate the synthetic set while distilling, with a plain-PyTorch student loop (no nested Trainer).

Every ``every_n_steps`` iterations (and once at the end) the callback trains ``num_students`` fresh students per
architecture on a snapshot of the images and logs ``eval/acc_mean`` and ``eval/acc_std`` (percent). Students are
spread over the ranks (student ``i`` on rank ``i % world_size``) and the accuracies gathered, so every rank does its
share and stays in lock-step; each student's seed depends on the run seed, the iteration and its index only, so the
numbers do not depend on the number of devices. The students use their own generators: evaluating does not change
the distillation run.

At the end of ``fit`` it also evaluates the random baseline of the same IPC (``compare_random``), prints both, and
writes ``eval.json`` (atomically) next to the artifact.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from lightning_dd.artifact import DistilledSet
from lightning_dd.evaluation.loop import train_student
from lightning_dd.evaluation.protocol import StudentRecipe, mean_std
from lightning_dd._atomic import atomic_json_dump
from lightning_dd.methods.base import DistillationModule, random_real_subset


class DistilledSetEvaluator(Callback):
    """Periodic and final evaluation of the synthetic set of a :class:`DistillationModule`.

    Args:
        every_n_steps: evaluate every N iterations (0: only at the end of ``fit``).
        num_students: students per architecture and evaluation.
        epochs: student training epochs (the reference uses 1000; 300 is the common cheaper protocol).
        models: student architectures (zoo names).
        compare_random: at the end, also evaluate the random real subset of the same IPC and seed.
        batch_size: student batch size.
        output: file name of the final results (JSON) in the log directory; ``""`` disables it.
    """

    def __init__(
        self,
        every_n_steps: int = 0,
        num_students: int = 3,
        epochs: int = 300,
        models: list[str] | None = None,
        compare_random: bool = True,
        batch_size: int = 256,
        output: str = "eval.json",
    ) -> None:
        super().__init__()
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0, got {every_n_steps}")
        if num_students < 1:
            raise ValueError(f"num_students must be >= 1, got {num_students}")
        self.every_n_steps = every_n_steps
        self.num_students = num_students
        self.epochs = epochs
        self.models = list(models or ["convnet"])
        self.compare_random = compare_random
        self.batch_size = batch_size
        self.output = output
        self.results: dict[str, Any] = {}
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ hooks
    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self.every_n_steps and step > 0 and step % self.every_n_steps == 0:
            module = self._module(pl_module)
            summary = self.evaluate(trainer, module, module.distilled_set(), step)
            first = summary[self.models[0]]
            pl_module.log("eval/acc_mean", first["mean"], rank_zero_only=False, sync_dist=False)
            pl_module.log("eval/acc_std", first["std"], rank_zero_only=False, sync_dist=False)
            for name, stats in summary.items():
                pl_module.log(f"eval/{name}/acc_mean", stats["mean"])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module = self._module(pl_module)
        step = trainer.global_step
        distilled = module.distilled_set()
        self.results = {"iteration": step, "epochs": self.epochs, "students": self.num_students,
                        module.method_name: self.evaluate(trainer, module, distilled, step)}
        if self.compare_random and module.method_name != "random":
            images = random_real_subset(trainer.datamodule, module.num_classes, module.ipc, module.hparams.seed)
            baseline = dataclasses.replace(distilled, images=images, method="random", hparams={}, soft_labels=None,
                                           lr=None)
            self.results["random"] = self.evaluate(trainer, module, baseline, -1)
        if trainer.is_global_zero:
            self._report(trainer, module)

    # ------------------------------------------------------------------ work
    def evaluate(
        self, trainer: L.Trainer, module: DistillationModule, distilled: DistilledSet, step: int
    ) -> dict[str, dict[str, Any]]:
        """Train the students of every architecture; returns ``{model: {"mean", "std", "accs"}}`` in percent."""
        test_images, test_labels = self._test_split(trainer)
        recipe = StudentRecipe(epochs=self.epochs, batch_size=self.batch_size, dsa_strategy=distilled.dsa_strategy)
        autocast = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(trainer.precision))
        if module.device.type == "cpu" and autocast == torch.float16:
            autocast = torch.bfloat16
        world, rank = trainer.world_size, trainer.global_rank
        summary: dict[str, dict[str, Any]] = {}
        for m, name in enumerate(self.models):
            local = torch.full((self.num_students,), float("nan"), device=module.device)
            for i in range(rank, self.num_students, world):
                keys = (int(module.hparams.seed), step, m, i)
                local[i] = 100.0 * train_student(distilled, test_images, test_labels, name, recipe, keys,
                                                 module.device, autocast)
            accs = _combine(module, local, world)
            mean, std = mean_std(accs)
            summary[name] = {"mean": mean, "std": std, "accs": accs}
        return summary

    def _test_split(self, trainer: L.Trainer) -> tuple[torch.Tensor, torch.Tensor]:
        if self._test is None:
            datamodule = trainer.datamodule
            split = datamodule.test_split()
            self._test = (datamodule.normalize(split.images), split.labels)
        return self._test

    def _report(self, trainer: L.Trainer, module: DistillationModule) -> None:
        lines = [f"[lightning_dd] evaluation after {self.results['iteration']} iterations "
                 f"({self.num_students} students x {self.epochs} epochs, final weights, test accuracy %):"]
        for key in (module.method_name, "random"):
            for name, stats in self.results.get(key, {}).items():
                lines.append(f"  {key:>8} IPC {module.ipc:<3} {name:<10} {stats['mean']:6.2f} ± {stats['std']:.2f}")
        print("\n".join(lines), flush=True)
        if self.output:
            atomic_json_dump(self.results, module.output_dir() / self.output)

    @staticmethod
    def _module(pl_module: L.LightningModule) -> DistillationModule:
        if not isinstance(pl_module, DistillationModule):
            raise TypeError(f"DistilledSetEvaluator needs a DistillationModule, got {type(pl_module).__name__}")
        return pl_module


def _combine(module: L.LightningModule, local: torch.Tensor, world: int) -> list[float]:
    """Every rank filled its own students; gather and take, per student, the value some rank computed."""
    if world > 1:
        gathered = module.all_gather(local)  # (world, num_students)
        local = torch.nan_to_num(gathered, nan=0.0).sum(0)
    return [float(a) for a in local.cpu()]
