"""One loop to train a classifier on tensors with SGD and DSA: :func:`fit_classifier`.

Students of the in-run evaluator, proxy pools, and later MTT experts (the epoch hook snapshots parameters), IDM's
queue networks, IDC's network and DC's inner loop all "train a network on an in-memory tensor dataset with SGD and
per-batch DSA"; this module is that loop, once. Pure torch, no Lightning.

Per epoch (``n`` training images, ``b`` = batch size)::

    order = torch.randperm(n, generator=generator)              # CPU, from the caller's generator
    for each batch idx = order[i : i + b]:                      # the last batch may be smaller
        x = augment(images[idx], generator)                     # one DSA op per batch, per-image parameters
        loss = cross_entropy(net(x), labels[idx])               # or soft targets: softmax of soft-label logits
        zero_grad(set_to_none=True); backward; SGD step
    scheduler.step()                                            # x lr_decay_factor at each of lr_milestones
    on_epoch_end(epoch, net)

Every random draw (shuffling, augmentation) comes from ``generator``, in that order; the global RNG is never used.
Initialise ``net`` from the same generator beforehand to make the whole run a function of one generator state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.optimizer import ParamsT

from lightning_dd.augment import DSA, IDCAugment, parse_strategy

__all__ = ["AUGMENTATIONS", "FitResult", "TrainRecipe", "classification_loss", "cutmix", "fit_classifier"]

_AUTOCAST_DTYPES = (torch.bfloat16, torch.float16)
#: the augmentation families of :class:`TrainRecipe`
AUGMENTATIONS: tuple[str, ...] = ("dsa", "idc")


@dataclass(frozen=True)
class TrainRecipe:
    """How :func:`fit_classifier` trains a network.

    Attributes:
        epochs: passes over the training tensors (>= 1).
        lr: initial SGD learning rate (> 0).
        momentum: SGD momentum, in ``[0, 1)``.
        weight_decay: SGD (L2) weight decay (>= 0).
        batch_size: images per step (>= 1); each epoch ends with a smaller batch when it does not divide ``n``.
        lr_milestones: 0-based epochs from which the learning rate is multiplied (once more) by ``lr_decay_factor``
            (``torch.optim.lr_scheduler.MultiStepLR`` stepped once per epoch; epoch ``e`` trains with
            ``lr * lr_decay_factor ** #{m <= e}``, so a milestone 0 decays from the start). Strictly increasing,
            each in ``[0, epochs)``; ``()`` = constant learning rate (no scheduler at all).
        lr_decay_factor: the multiplier at each milestone (> 0).
        augmentation: ``"dsa"`` (one op of the strategy per batch) or ``"idc"`` (IDC's flip/color/cutout always and
            one of the other ops: :class:`~lightning_dd.augment.IDCAugment`); both per-image parameters.
        cutmix_prob: probability that a batch is CutMix-ed after augmentation (IDC: 0.5; 0 = never, no draws).
        cutmix_beta: CutMix's ``Beta(beta, beta)`` area parameter (IDC: 1).
        dsa_strategy: per-batch DSA strategy (one op per batch, per-image parameters: the reference ``seed=-1``
            mode); ``"none"`` = the identity DSA (no augmentation, no random draws).
        dsa_align_corners: ``align_corners`` of the DSA's scale/rotate (MTT: ``True``; VICO/CMIDD/IID: ``False``).
    """

    epochs: int
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    lr_milestones: tuple[int, ...] = ()
    lr_decay_factor: float = 0.1
    dsa_strategy: str = "none"
    dsa_align_corners: bool = False
    augmentation: Literal["dsa", "idc"] = "dsa"
    cutmix_prob: float = 0.0
    cutmix_beta: float = 1.0

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str) -> ValueError:
            return ValueError(f"TrainRecipe.{name} must be {allowed}, got {getattr(self, name)!r}")

        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise bad("epochs", "an integer >= 1")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise bad("batch_size", "an integer >= 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise bad("lr", "a finite number > 0")
        if not (0 <= self.momentum < 1):
            raise bad("momentum", "in [0, 1)")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise bad("weight_decay", "a finite number >= 0")
        if not (math.isfinite(self.lr_decay_factor) and self.lr_decay_factor > 0):
            raise bad("lr_decay_factor", "a finite number > 0")
        milestones = tuple(self.lr_milestones)
        integers = all(isinstance(m, int) and not isinstance(m, bool) for m in milestones)
        if not integers or any(not 0 <= m < self.epochs for m in milestones) or list(milestones) != sorted(
            set(milestones)
        ):
            raise bad("lr_milestones", f"strictly increasing integer epochs in [0, {self.epochs})")
        object.__setattr__(self, "lr_milestones", milestones)  # a list from a config becomes a tuple
        parse_strategy(self.dsa_strategy)  # raises, naming the bad op and the allowed ones
        if self.augmentation not in AUGMENTATIONS:
            raise bad("augmentation", f"one of {AUGMENTATIONS}")
        if not 0 <= self.cutmix_prob <= 1:
            raise bad("cutmix_prob", "in [0, 1]")
        if not (math.isfinite(self.cutmix_beta) and self.cutmix_beta > 0):
            raise bad("cutmix_beta", "a finite number > 0")

    def optimizer(self, params: ParamsT, lr: float | None = None) -> torch.optim.SGD:
        """``SGD(params, lr, momentum, weight_decay)``; ``lr`` overrides :attr:`lr` when given."""
        return torch.optim.SGD(params, lr=self.lr if lr is None else lr, momentum=self.momentum,
                               weight_decay=self.weight_decay)

    def scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.MultiStepLR | None:
        """The per-epoch schedule (``MultiStepLR`` at :attr:`lr_milestones`), or ``None`` for a constant lr."""
        if not self.lr_milestones:
            return None
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(self.lr_milestones), gamma=self.lr_decay_factor)

    def augmenter(self) -> DSA:
        """The recipe's augmentation (DSA, or IDC's composition of the same ops; the identity for ``"none"``)."""
        kind = IDCAugment if self.augmentation == "idc" else DSA
        return kind(self.dsa_strategy, align_corners=self.dsa_align_corners)


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit_classifier` reports about the last epoch.

    Attributes:
        train_loss: mean training loss over the last epoch's images (of the augmented batches, as trained).
        train_accuracy: top-1 accuracy (fraction in [0, 1]) of the last epoch's training predictions against the
            hard ``labels`` (on the augmented batches, with the weights of the moment: the reference's train acc).
        epochs: epochs run.
        steps: optimizer steps taken.
    """

    train_loss: float
    train_accuracy: float
    epochs: int
    steps: int


def classification_loss(logits: Tensor, labels: Tensor, soft_targets: Tensor | None = None) -> Tensor:
    """Cross-entropy with hard labels, or with the softmax of soft-label logits when given.

    Args:
        logits: ``(B, K)``.
        labels: int64 ``(B,)``.
        soft_targets: ``(B, K)`` soft-label logits, or ``None``.

    Returns:
        Scalar mean loss.
    """
    if soft_targets is None:
        return nn.functional.cross_entropy(logits, labels)
    return nn.functional.cross_entropy(logits, soft_targets.softmax(dim=1))


def fit_classifier(
    net: nn.Module,
    images: Tensor,
    labels: Tensor,
    recipe: TrainRecipe,
    generator: torch.Generator,
    *,
    soft_labels: Tensor | None = None,
    lr: float | None = None,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    after_backward: Callable[[nn.Module], None] | None = None,
) -> FitResult:
    """Train ``net`` in place on ``(images, labels)`` with SGD and per-batch DSA, as ``recipe`` says.

    Args:
        net: the classifier, ``(B, C, H, W) -> (B, K)`` logits; trained in place (left in train mode).
        images: ``(N, C, H, W)`` float training images, in the space ``net`` expects (any device: batches are
            gathered where ``images`` lives and moved to ``device``; keep them on ``device`` to avoid copies).
        labels: int64 ``(N,)`` class indices (on ``images``' device).
        recipe: epochs, SGD settings, lr schedule, augmentation.
        generator: a CPU ``torch.Generator``, the only source of randomness (shuffling, then augmentation, per
            batch); the global RNG is never touched.
        soft_labels: optional ``(N, K)`` soft-label logits: the target becomes their softmax.
        lr: overrides ``recipe.lr`` (e.g. an artifact's learned learning rate); must be > 0.
        device: where to train; default: the device of ``net``'s first parameter (``net`` is moved there).
        autocast_dtype: ``None`` (float32), ``torch.bfloat16`` or ``torch.float16``: forward and loss run under
            ``torch.autocast(device.type, autocast_dtype)``.
        on_epoch_end: ``hook(epoch, net)`` after each epoch (0-based ``epoch``, after the scheduler step), e.g. to
            snapshot parameters (MTT experts) or evaluate; it may change ``net``'s mode (train mode is restored at
            the start of every epoch) but must not draw from ``generator`` if results are to stay reproducible.
        optimizer: an optimizer over ``net``'s parameters to continue with (its state, e.g. momentum, carries over
            between calls: IDC trains one network a little after every image step); default a fresh
            ``recipe.optimizer``. The recipe's schedule, if any, is applied to it for this call.
        after_backward: called with ``net`` after every backward pass, before the optimizer step (e.g.
            :func:`lightning_dd.distributed.average_gradients`, so that a helper network stays identical across
            ranks that each train it on their own images).

    Returns:
        :class:`FitResult` of the last epoch.

    Precision policy: parameters and optimizer state stay float32; with ``autocast_dtype`` the forward pass and
    loss run under autocast. ``float16`` also uses a ``torch.amp.GradScaler`` (dynamic loss scaling, skipped steps
    on overflow); ``bfloat16`` needs none. ``None`` runs plain float32 (the scaler is a disabled pass-through).

    DDP policy: the loop is rank-local: it never communicates, whatever the process group. Callers that need the
    same network on every rank (a proxy pool, experts) give every rank the same generator state and the same data,
    and get bit-identical results on identical hardware; callers that want independent networks per rank (students
    split across ranks) give each rank its own generator (derive it from the rank).

    Raises:
        ValueError: a bad shape, dtype, ``lr`` or ``autocast_dtype``, naming the bad value and what is allowed.
    """
    _check_inputs(images, labels, soft_labels, generator, lr, autocast_dtype)
    if soft_labels is not None and recipe.cutmix_prob:
        raise ValueError("CutMix (recipe.cutmix_prob > 0) mixes hard labels; it cannot be combined with soft_labels")
    dev = torch.device(device) if device is not None else _device_of(net)
    net.to(dev)
    optimizer = optimizer if optimizer is not None else recipe.optimizer(net.parameters(), lr=lr)
    scheduler = recipe.scheduler(optimizer)
    augment = recipe.augmenter()
    scaler = torch.amp.GradScaler(dev.type, enabled=autocast_dtype == torch.float16)
    n = images.shape[0]
    steps = 0
    loss_sum = torch.zeros((), device=dev)  # last-epoch statistics, accumulated on the device: no host sync per step
    correct = torch.zeros((), dtype=torch.long, device=dev)
    for epoch in range(recipe.epochs):
        net.train()
        loss_sum.zero_()
        correct.zero_()
        order = torch.randperm(n, generator=generator).to(images.device)
        for start in range(0, n, recipe.batch_size):
            idx = order[start : start + recipe.batch_size]
            x = augment(images[idx].to(dev), generator)
            y = labels[idx].to(dev)
            soft = None if soft_labels is None else soft_labels[idx].to(dev)
            mixed = None
            if recipe.cutmix_prob and float(torch.rand(1, generator=generator)) < recipe.cutmix_prob:
                x, mixed = cutmix(x, generator, recipe.cutmix_beta)
            with torch.autocast(dev.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                logits = net(x)
                loss = classification_loss(logits, y, soft)
                if mixed is not None:  # the pasted boxes' labels weigh by their area
                    partner, kept = mixed
                    loss = loss * kept + classification_loss(logits, y[partner.to(dev)], None) * (1 - kept)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if after_backward is not None:
                after_backward(net)
            scaler.step(optimizer)
            scaler.update()
            steps += 1
            loss_sum += loss.detach().float() * y.shape[0]
            correct += (logits.detach().argmax(dim=1) == y).sum()
        if scheduler is not None:
            scheduler.step()
        if on_epoch_end is not None:
            on_epoch_end(epoch, net)
    return FitResult(train_loss=float(loss_sum) / n, train_accuracy=int(correct) / n, epochs=recipe.epochs,
                     steps=steps)


def cutmix(x: Tensor, generator: torch.Generator, beta: float = 1.0) -> tuple[Tensor, tuple[Tensor, float]]:
    """CutMix (Yun et al., ICCV 2019) as IDC applies it (``misc/utils.py rand_bbox`` and ``train.py``).

    ``lam ~ Beta(beta, beta)``; a box of sides ``int(H sqrt(1 - lam))`` x ``int(W sqrt(1 - lam))`` centred at a
    uniform pixel, clipped to the image, is pasted from the images of a random permutation. Draws, in order, from
    ``generator``: ``lam`` (a uniform when ``beta == 1``; otherwise a numpy ``beta`` seeded from the generator), the
    permutation, the centre row, the centre column.

    Args:
        x: ``(B, C, H, W)`` images (not modified).

    Returns:
        ``(mixed images, (partner (B,), kept))``: image ``i`` holds a box of image ``partner[i]``; ``kept`` is the
        fraction of pixels that stayed (the clipped box's complement); the loss is ``kept * CE(y) + (1 - kept) *
        CE(y[partner])``.
    """
    if beta == 1.0:
        lam = float(torch.rand(1, generator=generator))
    else:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        lam = float(np.random.default_rng(seed).beta(beta, beta))
    b, _, h, w = x.shape
    partner = torch.randperm(b, generator=generator)
    cy = int(torch.randint(0, h, (1,), generator=generator))
    cx = int(torch.randint(0, w, (1,), generator=generator))
    cut = math.sqrt(1.0 - lam)
    half_h, half_w = int(h * cut) // 2, int(w * cut) // 2
    y1, y2 = min(max(cy - half_h, 0), h), min(max(cy + half_h, 0), h)
    x1, x2 = min(max(cx - half_w, 0), w), min(max(cx + half_w, 0), w)
    mixed = x.clone()
    mixed[:, :, y1:y2, x1:x2] = x[partner.to(x.device), :, y1:y2, x1:x2]
    return mixed, (partner, 1.0 - (y2 - y1) * (x2 - x1) / (h * w))


def _device_of(net: nn.Module) -> torch.device:
    param = next(net.parameters(), None)
    if param is None:
        raise ValueError("fit_classifier needs a network with parameters")
    return param.device


def _check_inputs(images: Tensor, labels: Tensor, soft_labels: Tensor | None, generator: torch.Generator,
                  lr: float | None, autocast_dtype: torch.dtype | None) -> None:
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"images must be float (N, C, H, W), got {images.dtype} of shape {tuple(images.shape)}")
    n = images.shape[0]
    if n == 0:
        raise ValueError("fit_classifier needs at least one training image, got N = 0")
    if labels.shape != (n,) or labels.dtype != torch.long:
        raise ValueError(f"labels must be int64 of shape ({n},), got {labels.dtype} of shape {tuple(labels.shape)}")
    if labels.device != images.device:
        raise ValueError(f"labels must live with the images on {images.device}, got {labels.device}")
    if soft_labels is not None and (soft_labels.dim() != 2 or soft_labels.shape[0] != n
                                    or soft_labels.device != images.device):
        raise ValueError(f"soft_labels must be (N={n}, K) on {images.device}, got shape {tuple(soft_labels.shape)} "
                         f"on {soft_labels.device}")
    if generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator (shuffling draws on the CPU), got one on "
                         f"{generator.device}")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if autocast_dtype is not None and autocast_dtype not in _AUTOCAST_DTYPES:
        raise ValueError(f"autocast_dtype must be None, torch.bfloat16 or torch.float16, got {autocast_dtype}")
