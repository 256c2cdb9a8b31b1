"""The shared base of every distillation method.

A :class:`DistillationModule` is a ``LightningModule`` whose parameters are the synthetic images. It owns the
:class:`~lightning_dd.synthetic.SyntheticSet`, the image optimizer (built from an ``OptimizerCallable``), the
run's random generators, initialisation (real images or noise), logging, image grids and the export of the
:class:`~lightning_dd.artifact.DistilledSet` at the end of ``fit``. A method subclass implements :meth:`match`.

One ``training_step`` is one distillation iteration. Methods that step the image optimizer once per iteration
(DM, DC/DSA outer steps, MTT) keep ``trainer.global_step == iteration``, so ``Trainer(max_steps=N)`` means
``N`` iterations.
"""

from __future__ import annotations

import functools
import math
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import lightning as L
import torch
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor

from lightning_dd import __version__
from lightning_dd.artifact import DistilledSet
from lightning_dd.augment import DSA
from lightning_dd.regularizers.base import RegularizationMixin, Regularizer, RegularizerContext
from lightning_dd.seeding import STREAM_INIT, STREAM_TRAIN, make_generator
from lightning_dd.synthetic import SyntheticSet


@runtime_checkable
class RealDataSource(Protocol):
    """What a method needs from the data side (``RealDataModule`` provides it)."""

    @property
    def info(self) -> Any: ...

    def real_images(self, class_index: int, n: int, generator: torch.Generator) -> Tensor: ...


@dataclass
class MatchResult:
    """What :meth:`DistillationModule.match` returns: the matching loss and the views regularizers may use.

    Attributes:
        loss: scalar matching loss (to be minimised w.r.t. the synthetic images).
        logs: extra scalars to log (name -> value), e.g. per-part losses.
        views: named tensors of the iteration (augmented synthetic images, feature maps, ...) for regularizers.
    """

    loss: Tensor
    logs: dict[str, Tensor] = field(default_factory=dict)
    views: dict[str, Any] = field(default_factory=dict)


class DistillationModule(RegularizationMixin, L.LightningModule):
    """Base of every method: synthetic images as parameters, manual optimisation, one iteration per step.

    Args:
        ipc: images per class (>= 1).
        num_classes: number of classes (linked from the data by the CLI).
        image_shape: ``(C, H, W)`` of the real images (linked from the data by the CLI).
        init: ``"real"`` (IPC random real images per class, drawn from the run seed) or ``"noise"`` (N(0, 1)).
        optimizer: builds the image optimizer from the parameters (default SGD lr 1.0, momentum 0.5).
        dsa_strategy: DSA strategy, ``"auto"`` = the dataset's default, ``"none"`` = no augmentation.
        seed: run seed; fixes the initial images and every random draw of the method.
        artifact_path: where to write the distilled set at the end of ``fit`` (default:
            ``<log dir>/distilled.pt``); ``""`` disables the export.
        image_grid_every_n_steps: save a PNG grid of the images every N iterations (0 = only at the end).
        regularizers: plug-in regularizers (CMI, IID, ...) whose weighted terms are added to the matching loss.
    """

    method_name: ClassVar[str] = "base"
    #: whether the image optimizer is needed (the random baseline has nothing to optimise)
    optimizes_images: ClassVar[bool] = True

    def __init__(
        self,
        ipc: int = 10,
        num_classes: int = 10,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        init: Literal["real", "noise"] = "real",
        optimizer: OptimizerCallable = lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.5),
        dsa_strategy: str = "auto",
        seed: int = 0,
        artifact_path: str | None = None,
        image_grid_every_n_steps: int = 0,
        regularizers: list[Regularizer] | None = None,
    ) -> None:
        super().__init__()
        if init not in ("real", "noise"):
            raise ValueError(f"init must be 'real' or 'noise', got {init!r}")
        if image_grid_every_n_steps < 0:
            raise ValueError(f"image_grid_every_n_steps must be >= 0, got {image_grid_every_n_steps}")
        self.save_hyperparameters(ignore=["optimizer", "regularizers"])
        # under LightningCLI, hparams are the subclass's own (given) init arguments only: a method that fixes some
        # base arguments (RandomSelection: init, dsa_strategy) would lack them, so complete them from the base
        base_args = {"ipc": ipc, "num_classes": num_classes, "image_shape": image_shape, "init": init,
                     "dsa_strategy": dsa_strategy, "seed": seed, "artifact_path": artifact_path,
                     "image_grid_every_n_steps": image_grid_every_n_steps}
        for key, value in base_args.items():
            self.hparams.setdefault(key, value)
        self.init_regularizers(regularizers)
        self.automatic_optimization = False
        self.synthetic = SyntheticSet(num_classes, ipc, tuple(image_shape))
        self.optimizer_factory = picklable_optimizer_factory(optimizer)
        # every per-iteration random draw of the method comes from this generator (its state is checkpointed)
        self.generator = make_generator(seed, STREAM_TRAIN)
        self.data_meta: dict[str, Any] = {}
        self.dsa: DSA | None = None
        self.exported_path: Path | None = None

    # ------------------------------------------------------------------ properties
    @property
    def ipc(self) -> int:
        return self.synthetic.ipc

    @property
    def num_classes(self) -> int:
        return self.synthetic.num_classes

    # ------------------------------------------------------------------ setup / init
    def setup(self, stage: str) -> None:
        """Read the dataset's description and fill the images (before the DDP wrap, so ranks agree)."""
        if stage != "fit":
            return
        source = self.trainer.datamodule
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
        self.data_meta = {
            "dataset": info.name,
            "class_names": list(info.class_names),
            "mean": list(info.mean),
            "std": list(info.std),
            "dsa_strategy": info.dsa_strategy,
        }
        strategy = self.hparams.dsa_strategy
        strategy = info.dsa_strategy if strategy == "auto" else strategy
        self.dsa = None if strategy in ("", "none", None) else DSA(strategy)
        self.initialize_images(source)
        self.setup_method(source)

    def initialize_images(self, source: RealDataSource) -> None:
        """Fill the synthetic images according to ``init`` (overridden by methods with their own init)."""
        if self.hparams.init == "noise":
            self.synthetic.fill_noise_(make_generator(self.hparams.seed, STREAM_INIT))
            return
        images = random_real_subset(source, self.num_classes, self.ipc, self.hparams.seed)
        self.synthetic.fill_(images.to(self.synthetic.images))

    def setup_method(self, source: RealDataSource) -> None:
        """Hook for method-specific state built from the data (networks, buffers); runs after initialisation."""

    def configure_optimizers(self) -> Any:
        if not self.optimizes_images:
            return None
        return self.optimizer_factory(self.image_parameters())

    def image_parameters(self) -> list[torch.nn.Parameter]:
        """The learnable tensors of the synthetic set (images, and lr / soft labels when learnable)."""
        return [p for p in self.synthetic.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ the iteration
    def match(self, real: Tensor) -> MatchResult:
        """The method's matching loss for one iteration.

        Args:
            real: normalised real images of every class, ``(K, k, C, H, W)`` (class ``c`` in ``real[c]``).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement match()")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        start = time.perf_counter()
        real = self.real_by_class(batch)
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        result = self.match(real)
        loss = result.loss
        if len(self.regularizers):
            reg_loss, reg_logs = self.regularize(self.regularizer_context(real, result))
            loss = loss + reg_loss
            for name, value in reg_logs.items():
                self.log(f"reg/{name}", value)
        self.check_finite(loss)
        self.manual_backward(loss)
        optimizer.step()
        self.log("train/loss", loss.detach(), prog_bar=True)
        self.log("train/iteration_seconds", time.perf_counter() - start)
        for name, value in result.logs.items():
            self.log(f"train/{name}", value)
        self.maybe_save_image_grid()
        return loss.detach()

    def regularizer_context(self, real: Tensor, result: MatchResult) -> RegularizerContext:
        """The context handed to regularizers: current images, labels, description, and the match's views."""
        meta = self.data_meta
        views = result.views
        return RegularizerContext(
            synthetic=self.synthetic.images,
            labels=self.synthetic.labels,
            num_classes=self.num_classes,
            space=self.synthetic.space,
            mean=tuple(meta["mean"]),
            std=tuple(meta["std"]),
            dataset=meta["dataset"],
            image_shape=tuple(self.synthetic.image_shape),
            step=self.global_step,
            seed=int(self.hparams.seed),
            augmented=views.get("augmented"),
            syn_feature_maps=views.get("syn_feature_maps"),
            real_feature_maps=views.get("real_feature_maps"),
            real_labels=views.get("real_labels"),
        )

    def real_by_class(self, batch: tuple[Tensor, Tensor]) -> Tensor:
        """Reshape a class-sorted, class-balanced batch into ``(K, k, C, H, W)`` after checking its labels."""
        images, labels = batch
        per_class = images.shape[0] // self.num_classes
        expected = torch.arange(self.num_classes, device=labels.device).repeat_interleave(per_class)
        if per_class < 1 or images.shape[0] != per_class * self.num_classes or not torch.equal(labels, expected):
            raise ValueError(
                "the real batch must hold the same number of images of every class, sorted by class "
                "(use RealDataModule / ClassBalancedBatchSampler)"
            )
        return images.view(self.num_classes, per_class, *images.shape[1:])

    def check_finite(self, loss: Tensor) -> None:
        """Stop with a clear error instead of writing NaN images."""
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(
                f"{type(self).__name__}: the distillation loss is {value} at iteration {self.global_step}; "
                "lower the image learning rate (model.optimizer.init_args.lr) or check the data normalisation"
            )

    # ------------------------------------------------------------------ pickling (ddp_spawn) and checkpoints
    def __getstate__(self) -> dict[str, Any]:
        # torch.Generator does not survive torch.multiprocessing's fd-sharing pickler: ship its state as bytes
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["generator"] = (str(self.generator.device), self.generator.get_state().numpy().tobytes())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        device, generator_state = state.pop("generator")
        self.__dict__.update(state)
        self.generator = torch.Generator(device=device)
        self.generator.set_state(torch.frombuffer(bytearray(generator_state), dtype=torch.uint8))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lightning_dd"] = {
            "generator": self.generator.get_state(),
            "data_meta": self.data_meta,
            "regularizers": [reg.state_for_checkpoint() for reg in self.regularizers],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("lightning_dd")
        if state is not None:
            self.generator.set_state(state["generator"])
            self.data_meta = dict(state["data_meta"])
            saved = state.get("regularizers", [])
            if len(saved) == len(self.regularizers):
                for reg, reg_state in zip(self.regularizers, saved, strict=True):
                    reg.load_checkpoint_state(reg_state)

    # ------------------------------------------------------------------ export
    def distilled_set(self) -> DistilledSet:
        """A detached CPU snapshot of the current synthetic set with its description."""
        if not self.data_meta:
            raise RuntimeError("the dataset description is unknown: call trainer.fit (setup) first")
        meta = self.data_meta
        synthetic = self.synthetic
        hparams = _plain(dict(self.hparams))
        if len(self.regularizers):  # not hyper-parameters (modules), yet they shape the images: record them
            hparams["regularizers"] = [_plain(reg.describe()) for reg in self.regularizers]
        return DistilledSet(
            images=synthetic.images.detach().float().cpu().clone(),
            labels=synthetic.labels.cpu().clone(),
            soft_labels=None if synthetic.soft_labels is None else synthetic.soft_labels.detach().float().cpu(),
            lr=None if synthetic.lr is None else float(synthetic.lr.detach()),
            dataset=meta["dataset"],
            class_names=tuple(meta["class_names"]),
            mean=tuple(meta["mean"]),
            std=tuple(meta["std"]),
            space=synthetic.space,
            dsa_strategy=meta["dsa_strategy"],
            method=self.method_name,
            ipc=self.ipc,
            seed=int(self.hparams.seed),
            hparams=hparams,
            version=__version__,
        )

    def output_dir(self) -> Path:
        """The run's log directory (where the artifact and image grids go by default)."""
        trainer = self.trainer
        return Path(trainer.log_dir or trainer.default_root_dir)

    def on_train_end(self) -> None:
        if self.hparams.artifact_path == "" or not self.trainer.is_global_zero:
            return
        path = Path(self.hparams.artifact_path or self.output_dir() / "distilled.pt")
        self.exported_path = self.distilled_set().save(path)
        self.save_image_grid(path.with_suffix(".png"))
        rank_zero_info(f"[lightning_dd] {self.method_name} distilled set written to {self.exported_path}")

    def maybe_save_image_grid(self) -> None:
        every = self.hparams.image_grid_every_n_steps
        if every and self.trainer.is_global_zero and self.global_step % every == 0:
            self.save_image_grid(self.output_dir() / "images" / f"step_{self.global_step:06d}.png")

    def save_image_grid(self, path: Path) -> None:
        """Write the images (de-normalised, one row per class) as a PNG, and to the logger if it takes images."""
        from lightning_dd.callbacks.images import save_image_grid

        grid = save_image_grid(self.distilled_set(), path)
        experiment = getattr(self.logger, "experiment", None) if self.logger else None
        if hasattr(experiment, "add_image"):
            experiment.add_image("synthetic_images", grid, self.global_step)


def picklable_optimizer_factory(factory: OptimizerCallable) -> OptimizerCallable:
    """``factory`` itself if it pickles, else an equivalent ``functools.partial(OptimizerClass, **defaults)``.

    Signature defaults are lambdas (LightningCLI renders them as ``class_path``/``init_args``), which cannot be
    pickled for ``ddp_spawn``; probing the factory once on a dummy tensor recovers the optimizer class and its
    constructor arguments (``Optimizer.defaults``).
    """
    try:
        pickle.dumps(factory)
        return factory
    except (pickle.PicklingError, AttributeError, TypeError):
        probe = factory([torch.nn.Parameter(torch.zeros(1))])
        return functools.partial(type(probe), **probe.defaults)


def random_real_subset(source: RealDataSource, num_classes: int, ipc: int, seed: int) -> Tensor:
    """``ipc`` distinct random real images of every class, class-sorted, ``(K*ipc, C, H, W)``, fixed by ``seed``.

    This is the ``init="real"`` starting point of every method and the random baseline.
    """
    generator = make_generator(seed, STREAM_INIT)
    return torch.cat([source.real_images(c, ipc, generator) for c in range(num_classes)])


def _plain(value: Any) -> Any:
    """Hyper-parameters reduced to JSON-like values (callables and objects become their repr)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
