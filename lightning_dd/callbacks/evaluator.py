"""Evaluate the synthetic set while distilling, with a plain-PyTorch student loop (no nested Trainer).

Every ``every_n_steps`` iterations (and once at the end) the callback trains ``num_students`` fresh students per
architecture on a snapshot of the images and logs ``eval/acc_mean`` and ``eval/acc_std`` (percent) at that iteration
only. Students are spread over the ranks (student ``i`` on rank ``i % world_size``) and the accuracies gathered, so
every rank does its share and stays in lock-step; each student's seed depends on the run seed, the iteration and its
index only, so the numbers do not depend on the number of devices. The students use their own generators:
evaluating does not change the distillation run. Sets in ``pixels`` / ``zca`` space are evaluated in their
evaluation space, with the real test split transformed alike (``lightning_dd.data.spaces``).

At the end of ``fit`` it also evaluates the random baseline of the same IPC (``compare_random``), prints both,
logs them and writes ``eval.json`` (atomically) next to the artifact. The final iteration is evaluated once: an
interval evaluation that fell on it is reused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from lightning_dd._atomic import atomic_json_dump, check_writable, write_or_fallback
from lightning_dd.artifact import DistilledSet
from lightning_dd.data.protocol import RealDataSource, random_real_subset
from lightning_dd.data.spaces import encode, evaluation_space, for_evaluation
from lightning_dd.data.store import ClassIndexedImages
from lightning_dd.data.types import LabeledImages
from lightning_dd.evaluation.loop import train_student
from lightning_dd.evaluation.protocol import StudentRecipe, mean_std, student_progress
from lightning_dd.methods.export import checked_on_rank_zero, run_dir
from lightning_dd.networks import NetworkName
from lightning_dd.visualize import plot_curves


# What the hooks read from the module (a DistillationModule). The hooks receive it typed as a plain LightningModule,
# which declares none of this: hence `module: _Evaluable = pl_module  # type: ignore[assignment]`.
class _Evaluable(Protocol):
    method_name: str
    iteration: int
    ipc: int
    num_classes: int
    device: torch.device
    seed: int

    def distilled_set(self) -> DistilledSet: ...


class _EvaluationData(RealDataSource, Protocol):
    """What the evaluator reads from the datamodule (:class:`~lightning_dd.data.real.RealDataModule` provides it)."""

    space: str

    def test_split(self) -> LabeledImages: ...

    def load_train(self) -> ClassIndexedImages: ...

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...


def _datamodule(trainer: L.Trainer) -> _EvaluationData:
    """The run's datamodule (Lightning sets ``trainer.datamodule`` at fit time without declaring it on ``Trainer``;
    the method's ``setup`` has checked it is a real-data source)."""
    return cast(_EvaluationData, getattr(trainer, "datamodule", None))


class DistilledSetEvaluator(Callback):
    """Periodic and final evaluation of the synthetic set of a ``DistillationModule``.

    Args:
        every_n_steps: evaluate every N iterations (0: only at the end of ``fit``).
        num_students: students per architecture and evaluation.
        epochs: student training epochs (the published protocol: 1000; reduced CPU budgets say 300).
        models: student architectures (zoo names).
        compare_random: at the end, also evaluate the random real subset of the same IPC and seed.
        compare_whole: at the end, also train students on the whole real train split (the upper bound).
        whole_epochs: epochs of those whole-set students (default ``max(1, epochs // 10)``: the whole set has many
            more images per epoch; the printed table states the epochs each row used).
        whole_batch_size: their batch size (default 64: more, smaller steps than 256 reach the whole set's accuracy
            in few epochs; digits: 30 epochs at 64 give ~94 %, at 256 ~79 %).
        batch_size: student batch size (default: the recipe's, 256 / IDC 64).
        recipe: the students' training recipe, ``"reference"`` (DC/DSA/DM ``evaluate_synset``: batch 256, lr x0.1
            at half the epochs, DSA) or ``"idc"`` (IDC's ``train.py``: batch 64, x0.2 at 2/3 and 5/6, IDC's
            augmentation + CutMix); the results and the table name it.
        output: file name of the final results (JSON) in the log directory; ``""`` disables it.
        progress: a progress bar over the students (rank 0, stderr) when the Trainer shows one.
    """

    def __init__(
        self,
        every_n_steps: int = 0,
        num_students: int = 3,
        epochs: int = 1000,
        models: list[NetworkName] | None = None,
        compare_random: bool = True,
        compare_whole: bool = False,
        whole_epochs: int | None = None,
        whole_batch_size: int = 64,
        batch_size: int | None = None,
        recipe: Literal["reference", "idc"] = "reference",
        output: str = "eval.json",
        progress: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(every_n_steps, bool) or every_n_steps < 0:
            raise ValueError(f"every_n_steps must be an integer >= 0, got {every_n_steps!r}")
        if num_students < 1:
            raise ValueError(f"num_students must be >= 1, got {num_students}")
        StudentRecipe.named(recipe, epochs=epochs, batch_size=batch_size)  # validates all three now
        self.every_n_steps = every_n_steps
        self.num_students = num_students
        self.epochs = epochs
        self.models = list(models or ["convnet"])
        self.compare_random = compare_random
        self.compare_whole = compare_whole
        self.whole_epochs = max(1, epochs // 10) if whole_epochs is None else whole_epochs
        self.whole_batch_size = whole_batch_size
        StudentRecipe(epochs=self.whole_epochs, batch_size=whole_batch_size)
        self.progress = progress
        self.batch_size = batch_size
        self.recipe = recipe
        self.output = output
        self.results: dict[str, Any] = {}
        self._test: dict[str, torch.Tensor] = {}
        self._last: tuple[int, dict[str, dict[str, Any]]] | None = None
        self._trained_per_class: int | None = None  # training images per class of the evaluated set (decoded)
        self._run_dir: Path | None = None
        self._accuracy: list[tuple[int, float]] = []  # (iteration, mean accuracy of the first model)
        self._cmi: list[tuple[int, float]] = []  # (iteration, reg/cmi) when a CMI regularizer logs it

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._run_dir = run_dir(trainer)  # every rank: a collective under DDP
        if self.output:
            out = self._run_dir / self.output
            checked_on_rank_zero(trainer, lambda: check_writable(out, "evaluation output"))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        module: _Evaluable = pl_module  # type: ignore[assignment]
        count = module.iteration
        cmi = trainer.callback_metrics.get("reg/cmi")
        if cmi is not None:
            self._cmi.append((count, float(cmi)))
        if self.every_n_steps and count > 0 and count % self.every_n_steps == 0:
            summary = self.evaluate(trainer, module, module.distilled_set(), count)
            self._last = (count, summary)
            self._accuracy.append((count, summary[self.models[0]]["mean"]))
            first = summary[self.models[0]]
            metrics = {"eval/acc_mean": first["mean"], "eval/acc_std": first["std"]}
            metrics.update({f"eval/{name}/acc_mean": stats["mean"] for name, stats in summary.items()})
            _log(trainer, metrics, count)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module: _Evaluable = pl_module  # type: ignore[assignment]
        count = module.iteration
        if getattr(pl_module, "interrupted_at", None) is not None:  # Ctrl-C: the user wants out, not hours of students
            rank_zero_info(f"[lightning_dd] final evaluation skipped: the run was interrupted after iteration {count} "
                           "(evaluate its artifact with `lightning-dd evaluate --distilled FILE`)")
            return
        distilled = module.distilled_set()
        self._trained_per_class = distilled.images.shape[0] // max(1, module.num_classes)
        reuse = self._last is not None and self._last[0] == count
        summary = self._last[1] if reuse and self._last is not None else self.evaluate(trainer, module, distilled,
                                                                                        count)
        self.results = {"iteration": count, "epochs": self.epochs, "students": self.num_students,
                        "recipe": self.recipe, module.method_name: summary}
        if self.compare_random and module.method_name != "random":
            data = _datamodule(trainer)
            images = random_real_subset(data, module.num_classes, module.ipc, module.seed)
            labels = torch.arange(module.num_classes).repeat_interleave(module.ipc)
            self.results["random"] = self.evaluate(trainer, module, _real_set(distilled, images, labels, "random"), -1)
        if self.compare_whole:
            data = _datamodule(trainer)
            store = data.load_train()
            whole = _real_set(distilled, data.encode(store.images), store.labels.clone(), "whole", ipc=0)
            self.results["whole"] = self.evaluate(trainer, module, whole, -2, epochs=self.whole_epochs,
                                                  batch_size=self.whole_batch_size)
            self.results["whole_epochs"] = self.whole_epochs
        keys = (module.method_name, "random", "whole")
        final = {f"eval/final/{key}/{name}/acc_{stat}": stats[stat]
                 for key in keys for name, stats in self.results.get(key, {}).items() for stat in ("mean", "std")}
        final["hp_metric"] = summary[self.models[0]]["mean"]  # TensorBoard's hparams view shows it
        pl_module.evaluation = dict(self.results)  # type: ignore[assignment]  # recorded in the artifact
        _log(trainer, final, count)
        if not reuse:
            self._accuracy.append((count, summary[self.models[0]]["mean"]))
        if trainer.is_global_zero:
            self._report(trainer, module)
            self._plot()

    # ------------------------------------------------------------------ work
    def evaluate(
        self, trainer: L.Trainer, module: _Evaluable, distilled: DistilledSet, step: int, epochs: int | None = None,
        batch_size: int | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Train the students of every architecture; returns ``{model: {"mean", "std", "accs"}}`` in percent."""
        distilled = for_evaluation(distilled)
        test_images, test_labels = self._test_split(trainer, distilled)
        # the whole-set comparison keeps the reference recipe with its own batch size
        recipe_name = self.recipe if batch_size is None else "reference"
        recipe = StudentRecipe.named(recipe_name, default_strategy=distilled.dsa_strategy, epochs=epochs or self.epochs,
                                     batch_size=batch_size or self.batch_size)
        autocast = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(str(trainer.precision))
        if module.device.type == "cpu" and autocast == torch.float16:
            autocast = torch.bfloat16
        world, rank = trainer.world_size, trainer.global_rank
        summary: dict[str, dict[str, Any]] = {}
        show = self.progress and trainer.is_global_zero and trainer.progress_bar_callback is not None
        bar = student_progress(len(self.models) * len(range(rank, self.num_students, world)), distilled.method,
                               recipe.epochs, show)
        for m, name in enumerate(self.models):
            local = torch.full((self.num_students,), float("nan"), device=module.device)
            for i in range(rank, self.num_students, world):
                keys = (module.seed, step, m, i)
                local[i] = 100.0 * train_student(distilled, test_images, test_labels, name, recipe, keys,
                                                 module.device, autocast)
                bar.update()
            accs = _combine(trainer, local)
            mean, std = mean_std(accs)
            summary[name] = {"mean": mean, "std": std, "accs": accs}
        bar.close()
        return summary

    def _test_split(self, trainer: L.Trainer, distilled: DistilledSet) -> tuple[torch.Tensor, torch.Tensor]:
        """The real test split in the set's evaluation space (cached per space)."""
        space = evaluation_space(distilled.space)
        split = _datamodule(trainer).test_split()
        if space not in self._test:
            self._test[space] = encode(split.images, space, distilled.mean, distilled.std, distilled.zca)
        return self._test[space], split.labels

    def _per_class_label(self, ipc: int) -> str:
        """``"10"``, or ``"10 -> 40"`` for a set whose stored images decode into more training images (IDC, IDM)."""
        trained = self._trained_per_class
        return str(ipc) if trained is None or trained == ipc else f"{ipc} -> {trained}"

    def _report(self, trainer: L.Trainer, module: _Evaluable) -> None:
        """The results table on stdout (diagnostics go to stderr)."""
        method, results = module.method_name, self.results
        lines = [f"[lightning_dd] test accuracy % after {results['iteration']} iterations ({self.num_students} "
                 f"students per row, {self.recipe!r} recipe, final weights; mean ± std):",
                 f"  {'set':<24} {'images/class':>12} {'epochs':>7}  {'model':<10} {'accuracy':>15}  {'vs random':>9}"]
        rows = [("whole train set", "all", results.get("whole_epochs", 0), results.get("whole", {})),
                ("random real subset", str(module.ipc), self.epochs, results.get("random", {})),
                (f"{method} (distilled)", self._per_class_label(module.ipc), self.epochs, results.get(method, {}))]
        for label, per_class, epochs, summary in rows:
            for name, stats in summary.items():
                base = results.get("random", {}).get(name)
                gain = f"{stats['mean'] - base['mean']:+9.2f}" if base is not None and label != "random real subset" \
                    else f"{'':>9}"
                lines.append(f"  {label:<24} {per_class:>12} {epochs:>7}  {name:<10} {stats['mean']:7.2f} ± "
                             f"{stats['std']:5.2f}  {gain}")
        print("\n".join(lines), flush=True)
        if self.output:
            assert self._run_dir is not None  # resolved in setup
            write_or_fallback(self._run_dir / self.output, lambda p: atomic_json_dump(self.results, p),
                              "evaluation results")


    def _plot(self) -> None:
        """``accuracy.png`` in the log directory: accuracy vs iteration, the references, ``reg/cmi``."""
        if self._run_dir is None:
            return
        name = self.models[0]
        references = {f"{key} ({self.results[key][name]['mean']:.1f})": self.results[key][name]["mean"]
                      for key in ("random", "whole") if name in self.results.get(key, {})}
        if not plot_curves(self._run_dir / "accuracy.png", self._accuracy, references, self._cmi):
            rank_zero_info("[lightning_dd] accuracy.png skipped: matplotlib is not installed "
                           "(pip install 'lightning-dd[plots]')")


def _real_set(distilled: DistilledSet, images: torch.Tensor, labels: torch.Tensor, method: str,
              ipc: int | None = None) -> DistilledSet:
    """Real images described like ``distilled`` (same data, space and statistics): a reference row's training set."""
    return dataclasses.replace(distilled, images=images, labels=labels, method=method, hparams={}, soft_labels=None,
                               lr=None, factor=1, ipc=distilled.ipc if ipc is None else ipc, provenance={})


def _log(trainer: L.Trainer, metrics: dict[str, float], step: int) -> None:
    """Log ``metrics`` once, at ``step`` (not re-logged at later steps), and expose them as callback metrics."""
    for key, value in metrics.items():
        trainer.callback_metrics[key] = torch.tensor(float(value))
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)


def _combine(trainer: L.Trainer, local: torch.Tensor) -> list[float]:
    """Every rank filled its own students; gather and take, per student, the value some rank computed."""
    if trainer.world_size > 1:
        gathered = trainer.strategy.all_gather(local)  # (world, num_students)
        local = torch.nan_to_num(gathered, nan=0.0).sum(0)
    return [float(a) for a in local.cpu()]
