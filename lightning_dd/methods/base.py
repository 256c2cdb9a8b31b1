"""The shared base of every distillation method: the iteration protocol.

A :class:`DistillationModule` is a ``LightningModule`` (manual optimisation) whose learnable parameters are the
synthetic images. One ``training_step`` is one distillation **iteration**, which the method implements in
:meth:`~DistillationModule.distill_step`; inside it the method calls :meth:`~DistillationModule.image_step` once per
image-optimiser step it wants (DM: once; IDM/IDC: once per class; DC/DSA: once per outer step). The base owns what
every method shares: the :class:`~lightning_dd.synthetic.SyntheticSet` (:meth:`configure_synthetic`), the image
optimiser over :meth:`param_groups` (one ``OptimizerCallable``), the run's generator, initialisation, regularizers,
the finite check, logging, and the export (the :class:`~lightning_dd.methods.export.ExportDistilledSet` callback
it returns from ``configure_callbacks``).

Counting: :attr:`DistillationModule.iteration` is the number of completed iterations (Lightning's batch progress,
checkpointed with the loop); ``trainer.global_step`` counts optimiser steps. For one-step methods they agree and
``Trainer(max_steps=N)`` is ``N`` iterations; a method with ``k`` image steps per iteration states ``k``
(:attr:`image_steps_per_iteration`) and needs ``max_steps = k * N``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.loops.progress import _ProcessedTracker
from lightning.pytorch.utilities.parsing import AttributeDict
from torch import Tensor

from lightning_dd.artifact import DistilledSet
from lightning_dd.augment import DSA
from lightning_dd.data.protocol import RealDataSource, RealDemand, random_real_indices, random_real_subset
from lightning_dd.data.spaces import as_zca
from lightning_dd.methods.export import ExportDistilledSet
from lightning_dd.methods.hparams import picklable_optimizer_factory, plain_yaml
from lightning_dd.methods.interrupt import GracefulInterrupt
from lightning_dd.methods.provenance import distilled_set_of
from lightning_dd.methods.resume import RESUME_MAY_CHANGE, check_budget, check_precision, resume_conflicts
from lightning_dd.regularizers.base import RegularizationMixin, Regularizer, RegularizerContext, Views
from lightning_dd.seeding import STREAM_INIT, STREAM_TRAIN, make_generator
from lightning_dd.synthetic import IMAGE_SPACES, SyntheticSet

__all__ = ["DistillationModule", "Views"]

INITS = ("real", "noise")


class DistillationModule(RegularizationMixin, L.LightningModule, ABC):
    """Base of every method: synthetic images as parameters, manual optimisation, one iteration per batch.

    Args:
        ipc: images per class (>= 1).
        num_classes: number of classes (linked from the data by the CLI).
        image_shape: ``(C, H, W)`` of the real images (linked from the data by the CLI).
        init: ``"real"`` (IPC random real images per class, drawn from the run seed) or ``"noise"`` (N(0, 1)).
        optimizer: builds the image optimiser from :meth:`param_groups` (default SGD lr 1.0, momentum 0.5).
        dsa_strategy: DSA strategy, ``"auto"`` = the dataset's default, ``"none"`` = no augmentation.
        seed: run seed; fixes the initial images and every random draw of the method.
        space: what the image values mean, ``"normalized"``, ``"pixels"`` or ``"zca"`` (linked from
            ``data.space`` by the CLI; must equal the data's).
        artifact_path: where the export callback writes the distilled set at the end of ``fit`` (default:
            ``<log dir>/distilled.pt``); ``""`` disables the export.
        image_grid_every_n_steps: also save a PNG grid of the images every N iterations (0 = only at the end).
        regularizers: plug-in regularizers (CMI, IID, ...) whose weighted terms are added at every image step.
    """

    method_name: ClassVar[str] = "base"
    #: image spaces the method can distil in
    spaces: ClassVar[tuple[str, ...]] = IMAGE_SPACES
    #: the ``init`` schemes the method accepts (a method with its own init adds it and overrides initialize_images)
    inits: ClassVar[tuple[str, ...]] = INITS
    #: image-optimiser steps per iteration (``max_steps = image_steps_per_iteration * iterations``)
    image_steps_per_iteration: int = 1

    def __init__(
        self,
        ipc: int = 10,
        num_classes: int = 10,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        init: Literal["real", "noise"] = "real",
        optimizer: OptimizerCallable = lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.5),
        dsa_strategy: str = "auto",
        seed: int = 0,
        space: Literal["normalized", "pixels", "zca"] = "normalized",
        artifact_path: str | None = None,
        image_grid_every_n_steps: int = 0,
        regularizers: list[Regularizer] | None = None,
    ) -> None:
        super().__init__()
        if init not in self.inits:
            raise ValueError(f"init must be one of {self.inits}, got {init!r}")
        if space not in self.spaces:
            raise ValueError(f"{type(self).__name__} distils in the image spaces {self.spaces}, got space={space!r}")
        if isinstance(image_grid_every_n_steps, bool) or image_grid_every_n_steps < 0:
            raise ValueError(f"image_grid_every_n_steps must be an integer >= 0, got {image_grid_every_n_steps!r}")
        DSA(None if dsa_strategy == "auto" else dsa_strategy)  # validates the strategy string now
        # the subclass's own arguments are collected too (Lightning walks the __init__ frames)
        self.save_hyperparameters(ignore=["optimizer", "regularizers"])
        # the base reads its own arguments from attributes: under LightningCLI ``hparams`` holds only the arguments
        # the CLI gave (a subclass that fixes some, as RandomSelection does, would lack them there)
        self.seed = int(seed)
        self.init_scheme = init
        self.dsa_strategy = dsa_strategy
        self.artifact_path = artifact_path
        self.image_grid_every_n_steps = image_grid_every_n_steps
        self.init_regularizers(regularizers)
        self.automatic_optimization = False
        self.synthetic = self.configure_synthetic()
        self.optimizer_factory = picklable_optimizer_factory(optimizer)
        # every per-iteration random draw of the method comes from this generator (its state is checkpointed)
        self.generator = make_generator(seed, STREAM_TRAIN)
        self.data_meta: dict[str, Any] = {}
        self._run_zca: Any = None  # the ZCA of data_meta["zca"], built on first use (run_zca)
        self.dsa = DSA(None)  # the dataset's strategy replaces the identity in setup
        self._batch_checked = False
        self._finite: Tensor | None = None  # on-device "every loss so far was finite" flag
        self._iteration_loss: Tensor | None = None
        self.interrupted_at: int | None = None  # set by GracefulInterrupt when Ctrl-C stopped the run
        self.init_indices: list[int] | None = None  # train indices of the init="real" images (the artifact has them)

    # ------------------------------------------------------------------ what a method configures
    def configure_synthetic(self) -> SyntheticSet:
        """The synthetic set (shape known now, values filled in ``setup``); override for factorised sets."""
        hp = self.hparams
        return SyntheticSet(int(hp["num_classes"]), int(hp["ipc"]), tuple(hp["image_shape"]), space=hp["space"])

    def configure_method(self, data: RealDataSource) -> None:
        """Build method-specific helpers (networks, buffers) from the data; runs after image initialisation."""

    def real_demand(self) -> RealDemand:
        """The real images one iteration consumes (handed to the data module in ``setup``); default: one
        class-balanced batch."""
        return RealDemand()

    def param_groups(self) -> list[dict[str, Any]]:
        """The image optimiser's parameter groups: the learnable tensors of the synthetic set by default.

        A method adds groups with their own options (MTT: ``{"params": [syn_lr], "lr": lr_lr}``).
        """
        params = [p for p in self.synthetic.parameters() if p.requires_grad]
        return [{"params": params}] if params else []

    @abstractmethod
    def distill_step(self, batch: Any) -> None:
        """One distillation iteration on ``batch`` (the class-balanced real batch); calls :meth:`image_step`."""

    # ------------------------------------------------------------------ properties
    @property
    def hparams_initial(self) -> AttributeDict:
        """The saved hyper-parameters as loggers receive them: plain YAML types (tuples as lists), so the
        ``hparams.yaml`` a logger writes loads with ``yaml.safe_load``."""
        return AttributeDict({k: plain_yaml(v) for k, v in super().hparams_initial.items()})

    @property
    def ipc(self) -> int:
        return self.synthetic.ipc

    @property
    def num_classes(self) -> int:
        return self.synthetic.num_classes

    @property
    def iteration(self) -> int:
        """Completed distillation iterations: the running iteration's 0-based index inside ``distill_step``, the
        count including it in ``on_train_batch_end``. Lightning's batch progress (checkpointed), not ``global_step``.
        """
        trainer = self._trainer
        if trainer is None:
            return 0
        total = trainer.fit_loop.epoch_loop.batch_progress.total
        assert isinstance(total, _ProcessedTracker)  # Lightning's batch progress tracks processed batches
        return int(total.processed)

    # ------------------------------------------------------------------ setup / init
    def setup(self, stage: str) -> None:
        """Read the dataset's description and fill the images (before the DDP wrap, so ranks agree)."""
        if stage != "fit":
            return
        check_budget(self.trainer)
        check_precision(self.trainer)
        source = getattr(self.trainer, "datamodule", None)  # set by Lightning at fit time, not declared on Trainer
        if not isinstance(source, RealDataSource):
            raise TypeError(
                f"{type(self).__name__} needs a datamodule with `info` and `real_images(class_index, n, generator)` "
                f"(lightning_dd.data.RealDataModule); got {type(source).__name__}"
            )
        info = source.info
        if info.num_classes != self.num_classes or tuple(info.image_shape) != tuple(self.synthetic.image_shape):
            raise ValueError(
                f"the model was built for {self.num_classes} classes of shape {tuple(self.synthetic.image_shape)} "
                f"but dataset {info.name!r} has {info.num_classes} classes of shape {tuple(info.image_shape)}; "
                "pass matching model.num_classes / model.image_shape (the CLI links them automatically)"
            )
        data_space = getattr(source, "space", "normalized")
        if data_space != self.synthetic.space:
            raise ValueError(f"the model distils in space {self.synthetic.space!r} but the data delivers "
                             f"{data_space!r} images; pass the same data.space and model.space (the CLI links them)")
        demand = self.real_demand()
        if hasattr(source, "set_real_demand"):
            source.set_real_demand(demand)
        elif demand != RealDemand():
            raise TypeError(f"{type(self).__name__} consumes {demand} per iteration, which needs a datamodule with "
                            f"set_real_demand (lightning_dd.data.RealDataModule); got {type(source).__name__}")
        zca = source.zca_state() if data_space == "zca" and hasattr(source, "zca_state") else None
        self.data_meta = {"dataset": info.name, "class_names": list(info.class_names), "mean": list(info.mean),
                          "std": list(info.std), "dsa_strategy": info.dsa_strategy, "zca": zca,
                          "batch_real": getattr(source, "batch_real", None)}
        strategy = self.dsa_strategy
        self.dsa = DSA(info.dsa_strategy if strategy == "auto" else strategy)
        self.initialize_images(source)
        self.configure_method(source)

    def initialize_images(self, source: RealDataSource) -> None:
        """Fill the synthetic images according to ``init`` (overridden by methods with their own init)."""
        if self.init_scheme == "noise":
            self.synthetic.fill_noise_(make_generator(self.seed, STREAM_INIT))
            return
        images = random_real_subset(source, self.num_classes, self.ipc, self.seed)
        self.init_indices = random_real_indices(source, self.num_classes, self.ipc, self.seed)
        self.synthetic.fill_(images.to(self.synthetic.images))

    def configure_optimizers(self) -> Any:
        groups = self.param_groups()
        return self.optimizer_factory(groups) if groups else None

    def configure_callbacks(self) -> list[Callback]:
        """The export callback (artifact + image grids) and Ctrl-C handling, unless the Trainer has its own."""
        callbacks: list[Callback] = getattr(self.trainer, "callbacks", [])  # set by Lightning, not declared on Trainer
        own: list[Callback] = []
        if not any(isinstance(cb, ExportDistilledSet) for cb in callbacks):
            own.append(ExportDistilledSet(path=self.artifact_path,
                                          grid_every_n_iterations=self.image_grid_every_n_steps))
        if not any(isinstance(cb, GracefulInterrupt) for cb in callbacks):
            own.append(GracefulInterrupt())
        return own

    # ------------------------------------------------------------------ the iteration
    def training_step(self, batch: Any, batch_idx: int) -> None:
        start = time.perf_counter()
        self._iteration_loss = None
        self.distill_step(batch)
        if self._iteration_loss is not None:
            self.log("train/loss", self._iteration_loss, prog_bar=True)
        self.log("train/iteration_seconds", time.perf_counter() - start)
        interval = max(1, int(getattr(self.trainer, "log_every_n_steps", 50) or 1))
        if (self.iteration + 1) % interval == 0:
            self.assert_finite()

    def image_step(self, loss: Tensor, views: Views | None = None) -> Tensor:
        """One image-optimiser step on ``loss`` plus the regularizers' terms; returns the total, detached.

        Callable several times per iteration. ``views`` tells the regularizers what the step used (its synthetic
        images and labels when not the whole set, augmented images, feature maps).
        """
        views = views or Views()
        if len(self.regularizers):
            reg_loss, reg_logs = self.regularize(self.regularizer_context(views))
            loss = loss + reg_loss
            for name, value in reg_logs.items():
                self.log(f"reg/{name}", value)
        self._track_finite(loss)
        optimizer = self.optimizers()
        assert not isinstance(optimizer, list), "a DistillationModule has one (image) optimizer"
        optimizer.zero_grad(set_to_none=True)
        # only into the optimised tensors: helper networks (DC's inner net, whose gradients the loss goes through
        # to second order) would otherwise receive gradients nobody reads
        self.manual_backward(loss, inputs=[p for group in optimizer.param_groups for p in group["params"]])
        optimizer.step()
        total = loss.detach()
        self._iteration_loss = total if self._iteration_loss is None else self._iteration_loss + total
        for name, value in views.logs.items():
            self.log(f"train/{name}", value)
        return total

    def regularizer_context(self, views: Views) -> RegularizerContext:
        """The context handed to regularizers: the step's images (default the decoded set), description, views."""
        meta = self.data_meta
        labels: Tensor | None
        if views.synthetic is None:
            synthetic, labels = self.synthetic.decode()
        else:
            synthetic, labels = views.synthetic, views.labels
        assert labels is not None
        return RegularizerContext(
            synthetic=synthetic,
            labels=labels,
            num_classes=self.num_classes,
            space=self.synthetic.space,
            mean=tuple(meta["mean"]),
            std=tuple(meta["std"]),
            dataset=meta["dataset"],
            image_shape=self.synthetic.image_shape,
            iteration=self.iteration,
            seed=self.seed,
            augmented=views.augmented,
            syn_feature_maps=views.syn_feature_maps,
            real_feature_maps=views.real_feature_maps,
            real_labels=views.real_labels,
            zca=self.run_zca(),
        )

    def run_zca(self) -> Any:
        """The run's fitted ZCA (built once from the dataset description), ``None`` outside the ``zca`` space."""
        if self._run_zca is None and self.data_meta.get("zca") is not None:
            self._run_zca = as_zca(self.data_meta["zca"])
        return self._run_zca

    def _track_finite(self, loss: Tensor) -> None:
        """Before the step: on the CPU raise at once (no sync cost); elsewhere fold into an on-device flag."""
        finite = torch.isfinite(loss.detach())
        self._finite = finite if self._finite is None else self._finite & finite
        if loss.device.type == "cpu":
            self.assert_finite()

    def assert_finite(self) -> None:
        """Raise (with advice) if a loss since the start was NaN/inf: no NaN images are ever exported.

        On the CPU this runs every iteration; on accelerators every ``log_every_n_steps`` iterations and before the
        export, so the check does not force a host synchronisation per step.
        """
        if self._finite is not None and not bool(self._finite):
            raise FloatingPointError(
                f"{type(self).__name__}: the distillation loss became NaN or infinite at or before iteration "
                f"{self.iteration}; lower the image learning rate (model.optimizer.init_args.lr) or check the data "
                "normalisation"
            )

    # ------------------------------------------------------------------ pickling (ddp_spawn) and checkpoints
    def __getstate__(self) -> dict[str, Any]:
        # torch.Generator does not survive torch.multiprocessing's fd-sharing pickler: ship its state as bytes
        state = dict(super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__)
        state["generator"] = (str(self.generator.device), self.generator.get_state().numpy().tobytes())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        device, generator_state = state.pop("generator")
        self.__dict__.update(state)
        self.generator = torch.Generator(device=device)
        self.generator.set_state(torch.frombuffer(bytearray(generator_state), dtype=torch.uint8))

    def resume_settings(self) -> dict[str, Any]:
        """What a resume must keep (:mod:`lightning_dd.methods.resume`): hyper-parameters, class, image-optimiser
        settings, regularizers, dataset description."""
        groups = self.param_groups()
        meta = self.data_meta
        return {
            "hparams": dict(self.hparams),
            "method": f"{type(self).__module__}.{type(self).__qualname__}",
            "optimizer": self.optimizer_factory(groups).param_groups if groups else [],
            "regularizers": [reg.describe()["class_path"] for reg in self.attached_regularizers()],
            "data": {key: meta.get(key) for key in ("dataset", "class_names", "mean", "std")},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        settings = self.resume_settings()
        settings["optimizer"] = [{k: v for k, v in g.items() if k != "params"} for g in settings["optimizer"]]
        checkpoint["lightning_dd"] = {
            "generator": self.generator.get_state(),
            "data_meta": self.data_meta,
            "regularizers": [reg.state_for_checkpoint() for reg in self.attached_regularizers()],
            "resume": settings,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a resume that changes more than the budget and the outputs, or that has nothing left to run;
        then restore the generators and the dataset description (ZCA state included)."""
        max_steps = self._trainer.max_steps if self._trainer is not None else -1
        done = int(checkpoint.get("global_step", 0))
        if max_steps != -1 and done >= max_steps:
            raise ValueError(f"the checkpoint is at step {done} already and trainer.max_steps={max_steps}: nothing "
                             f"is left to run; pass trainer.max_steps > {done} to extend the run")
        state = checkpoint.get("lightning_dd")
        if state is None:
            return
        # a resume inside fit is checked; load_from_checkpoint (no Trainer: the hparams are the checkpoint's) is not
        conflicts = resume_conflicts(state.get("resume", {}), self.resume_settings()) if self._trainer else []
        if conflicts:
            outputs = ", ".join(RESUME_MAY_CHANGE)
            raise ValueError("this run differs from the checkpoint it resumes; a resume may change only the budget "
                             f"(trainer.max_steps / max_epochs, callbacks) and the outputs ({outputs}): "
                             + "; ".join(conflicts))
        self.generator.set_state(state["generator"])
        self.data_meta = dict(state["data_meta"])
        for reg, reg_state in zip(self.attached_regularizers(), state.get("regularizers", []), strict=False):
            reg.load_checkpoint_state(reg_state)

    # ------------------------------------------------------------------ the artifact
    def distilled_set(self) -> DistilledSet:
        """A detached CPU snapshot of the decoded (training-ready) synthetic set with its description."""
        return distilled_set_of(self)
