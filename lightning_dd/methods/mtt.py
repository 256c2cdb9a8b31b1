"""Matching Training Trajectories (MTT; Cazenavette et al., CVPR 2022; ``GeorgeCazenavette/mtt-distillation``).

One iteration (``distill.py``): draw an expert and a start epoch ``s < max_start_epoch`` (the run's generator);
from the expert's parameters at ``s`` unroll a functional student ``syn_steps`` SGD steps with the learnable step
size on minibatches of ``batch_syn`` synthetic images (reshuffled when exhausted; per-image DSA, one op per batch,
``align_corners=True`` as MTT's DSA), and take one optimizer step on

    ||theta_N - theta*_{s + expert_epochs}||^2 / ||theta*_s - theta*_{s + expert_epochs}||^2

(:mod:`lightning_dd.losses.trajectory`). The images and the step size are two parameter groups of ONE optimizer
(the reference's two SGD optimizers have the same class and momentum 0.5: one optimizer keeps one step and one
gradient-scaler update per iteration, so ``max_steps`` = iterations): the images with the optimizer's lr (``lr_img``),
the step size with ``lr_lr``. ``unroll="constant_memory"`` gives the same (exact) gradients with memory flat in
``syn_steps``.

Guards: a NaN/inf loss stops the run (the base's finite check); a learned step size that goes <= 0 stops it with an
error naming the iteration (``lr_guard="raise"``) or is clamped to ``min_lr`` (``"clamp"``).

The expert buffer (``lightning-dd experts``) is read once per process in ``setup`` into plain CPU tensors (never a
submodule: nothing enters checkpoints or DDP) and refused when its dataset, resolution, classes, normalisation,
image space, ZCA, network or epochs do not fit the run.

Known differences from the reference: the expert and the minibatch order are drawn from the run's generator (the
reference walks shuffled buffer files with the global RNG); CIFAR-100 uses its own mean/std (the reference reuses
CIFAR-10's). DDP: every rank draws the same expert and start (the run's generator is the same on every rank).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from lightning_dd.augment import DSA
from lightning_dd.data.protocol import NO_REAL_IMAGES, RealDataSource, RealDemand
from lightning_dd.losses.trajectory import FlatStudent, constant_memory_trajectory_loss, unrolled_trajectory_loss
from lightning_dd.methods.base import DistillationModule
from lightning_dd.methods.matching import check_int, matching_network
from lightning_dd.networks import NetworkName
from lightning_dd.pretrained.experts import ExpertBuffer, load_expert_buffer
from lightning_dd.synthetic import SyntheticSet

__all__ = ["MTT", "UNROLLS"]

#: how the student's unroll is differentiated
UNROLLS: tuple[str, ...] = ("plain", "constant_memory")


class MTT(DistillationModule):
    """Trajectory matching against expert trajectories, with a learnable student step size.

    Args:
        expert_buffer: directory of the expert buffer (``lightning-dd experts --output DIR``).
        syn_steps: student updates unrolled per iteration ``N``.
        expert_epochs: the target is the expert this many epochs after the start.
        max_start_epoch: start epochs are drawn from ``[0, max_start_epoch)`` (the reference's exclusive bound).
        lr_teacher: initial learned step size (the reference's ``--lr_teacher``).
        lr_lr: learning rate of the step size (its parameter group; momentum as the optimizer's).
        batch_syn: synthetic images per student step (``None`` = the whole set, the reference's default).
        network: the student / expert architecture (must be the buffer's).
        unroll: ``"plain"`` (the reference: every step's graph kept) or ``"constant_memory"`` (exact recomputation).
        lr_guard: a step size <= 0 after an update: ``"raise"`` (stop, naming the iteration) or ``"clamp"``.
        min_lr: the clamp's floor (> 0).
        max_experts: read at most this many experts of the buffer (memory), ``None`` = all.
        optimizer: builds the one optimizer over both groups; its lr is the image lr (``lr_img``; reference SGD
            momentum 0.5; the per-cell lr_img are in ``configs/overrides/mtt``).
        **kwargs: the arguments of :class:`~lightning_dd.methods.base.DistillationModule` (``init="real"``, the
            dataset's DSA strategy; ``space`` ``"zca"`` for the ZCA cells).
    """

    method_name = "MTT"

    def __init__(self, expert_buffer: str = "experts", syn_steps: int = 20, expert_epochs: int = 2,
                 max_start_epoch: int = 20, lr_teacher: float = 0.01, lr_lr: float = 1e-5,
                 batch_syn: int | None = None, network: NetworkName = "convnet",
                 unroll: Literal["plain", "constant_memory"] = "plain",
                 lr_guard: Literal["raise", "clamp"] = "raise", min_lr: float = 1e-8, max_experts: int | None = None,
                 optimizer: OptimizerCallable = lambda p: torch.optim.SGD(p, lr=1000.0, momentum=0.5),
                 **kwargs: Any) -> None:
        for name, value in (("lr_teacher", lr_teacher), ("lr_lr", lr_lr), ("min_lr", min_lr)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if unroll not in UNROLLS:
            raise ValueError(f"unroll must be one of {UNROLLS}, got {unroll!r}")
        if lr_guard not in ("raise", "clamp"):
            raise ValueError(f"lr_guard must be 'raise' or 'clamp', got {lr_guard!r}")
        self.syn_steps = check_int("syn_steps", syn_steps)
        self.expert_epochs = check_int("expert_epochs", expert_epochs)
        self.max_start_epoch = check_int("max_start_epoch", max_start_epoch)
        self.batch_syn = None if batch_syn is None else check_int("batch_syn", batch_syn, hint=" (or null: all)")
        if max_experts is not None:
            check_int("max_experts", max_experts, hint=" (or null: all)")
        self.lr_teacher = float(lr_teacher)
        self.lr_lr = float(lr_lr)
        self.expert_buffer = expert_buffer
        self.max_experts = max_experts
        self.network_name = network
        super().__init__(optimizer=optimizer, **kwargs)
        self.student = FlatStudent(matching_network(self, network))  # a plain attribute: never a submodule
        self.unroll: str = unroll
        self.lr_guard: str = lr_guard
        self.min_lr = float(min_lr)
        self.buffer: ExpertBuffer | None = None  # read in setup, once per process
        self._lr_positive: Tensor | None = None  # on-device "the step size stayed > 0" flag

    def configure_synthetic(self) -> SyntheticSet:
        hp = self.hparams
        return SyntheticSet(int(hp["num_classes"]), int(hp["ipc"]), tuple(hp["image_shape"]), learn_lr=True,
                            init_lr=self.lr_teacher, space=hp["space"])

    def real_demand(self) -> RealDemand:
        """None: MTT's real data are the expert trajectories (the data module yields empty batches)."""
        return NO_REAL_IMAGES

    def param_groups(self) -> list[dict[str, Any]]:
        """The images (the optimizer's lr, ``lr_img``) and the learned step size (``lr_lr``): one optimizer."""
        assert self.synthetic.lr is not None
        return [{"params": [self.synthetic.images]},
                {"params": [self.synthetic.lr], "lr": self.lr_lr}]

    def configure_method(self, data: RealDataSource) -> None:
        """Read and check the expert buffer; MTT's DSA uses ``align_corners=True``."""
        self.dsa = DSA(self.dsa.strategy, constants=self.dsa.constants, align_corners=True)
        meta = self.data_meta
        buffer = load_expert_buffer(self.expert_buffer, self.max_experts)
        buffer.check_compatible(meta["dataset"], self.synthetic.image_shape, meta["mean"], meta["std"],
                                self.synthetic.space, num_classes=self.num_classes)
        zca = self.run_zca()
        buffer.check_run(self.network_name, self.student.num_parameters,
                         None if zca is None else zca.fingerprint(), self.max_start_epoch - 1 + self.expert_epochs)
        self.buffer = buffer

    def on_fit_start(self) -> None:
        self.student.net.to(self.device)

    # ------------------------------------------------------------------ the iteration
    def draw_segment(self, device: torch.device) -> tuple[Tensor, Tensor, int, int]:
        """The iteration's expert and start epoch (from the run's generator): ``(start, target, expert, epoch)``."""
        assert self.buffer is not None, "configure_method reads the expert buffer"
        expert = int(torch.randint(len(self.buffer), (1,), generator=self.generator))
        epoch = int(torch.randint(self.max_start_epoch, (1,), generator=self.generator))
        start = self.buffer.snapshot(expert, epoch).to(device)
        target = self.buffer.snapshot(expert, epoch + self.expert_epochs).to(device)
        return start, target, expert, epoch

    def step_plan(self, labels: Tensor, image_size: tuple[int, int]) -> list[tuple[Tensor, Any]]:
        """Per student step, the minibatch indices and its DSA parameters, drawn now (the constant-memory unroll
        replays them): chunks of ``batch_syn`` of a fresh permutation, taken from its end as the reference pops
        them, a new permutation when exhausted; one op per batch with per-image parameters."""
        n = labels.shape[0]
        size = self.batch_syn or n
        chunks: list[Tensor] = []
        plan = []
        for _ in range(self.syn_steps):
            if not chunks:
                chunks = list(torch.split(torch.randperm(n, generator=self.generator), size))
            idx = chunks.pop()
            params = None if self.dsa.is_identity else self.dsa.sample(len(idx), self.generator, shared_op=True,
                                                                       image_size=image_size)
            plan.append((idx.to(labels.device), params))
        return plan

    def trajectory_loss(self, images: Tensor, labels: Tensor, start: Tensor, target: Tensor) -> Tensor:
        """The matching loss of one segment, by :attr:`unroll` (both give the same value and gradients)."""
        plan = self.step_plan(labels, (images.shape[-2], images.shape[-1]))

        def batch(step: int, x: Tensor) -> tuple[Tensor, Tensor]:
            idx, params = plan[step]
            chosen = x[idx]
            return (chosen if params is None else self.dsa.apply(chosen, params)), labels[idx]

        assert self.synthetic.lr is not None
        loss_fn = constant_memory_trajectory_loss if self.unroll == "constant_memory" else unrolled_trajectory_loss
        return loss_fn(self.student, images, self.synthetic.lr, start, target, self.syn_steps, batch)

    def distill_step(self, batch: Any) -> None:
        images, labels = self.synthetic.decode()
        start, target, expert, epoch = self.draw_segment(images.device)
        self.log("train/expert", float(expert))
        loss = self.trajectory_loss(images, labels, start, target)
        self.image_step(loss)
        self.guard_lr()
        assert self.synthetic.lr is not None
        self.log("train/syn_lr", self.synthetic.lr.detach())
        self.log("train/start_epoch", float(epoch))

    # ------------------------------------------------------------------ the step-size guard
    def guard_lr(self) -> None:
        """After the step: clamp the step size, or fold ``lr > 0`` into a flag (checked at once on the CPU)."""
        lr = self.synthetic.lr
        assert lr is not None
        if self.lr_guard == "clamp":
            with torch.no_grad():
                lr.clamp_(min=self.min_lr)
            return
        positive = lr.detach() > 0
        self._lr_positive = positive if self._lr_positive is None else self._lr_positive & positive
        if lr.device.type == "cpu":
            self.assert_finite()

    def assert_finite(self) -> None:
        super().assert_finite()
        if self._lr_positive is not None and not bool(self._lr_positive):
            assert self.synthetic.lr is not None
            lr = float(self.synthetic.lr.detach())
            raise FloatingPointError(
                f"MTT: the learned step size became {lr:.3g} (<= 0) at or before iteration "
                f"{self.iteration}; lower model.lr_lr, or pass model.lr_guard=clamp to keep it >= model.min_lr"
            )
