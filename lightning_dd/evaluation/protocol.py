"""The evaluation protocol shared by every student trainer (Lightning or plain PyTorch).

The reference protocol (``evaluate_synset`` of DC/DSA/DM): a fresh randomly initialised network, SGD lr 0.01,
momentum 0.9, weight decay 5e-4, batch 256, per-sample DSA on every training batch, learning rate x0.1 at half of
the epochs, top-1 accuracy of the final weights on the full real test set. Deviations, stated: we run exactly
``epochs`` epochs (the reference runs ``epochs + 1``) and keep the momentum buffer across the decay (the reference
re-creates the optimizer).
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import Tensor
from torch.optim.optimizer import ParamsT
from tqdm.auto import tqdm

from lightning_dd.augment import DSA
from lightning_dd.training import TrainRecipe, classification_loss

DEFAULT_STUDENT_EPOCHS = 1000
"""The published protocol's student epochs (``epoch_eval_train = 1000``); reduced CPU runs pass 300 explicitly."""


@dataclass(frozen=True)
class StudentRecipe:
    """How a student is trained on a distilled set (a :class:`~lightning_dd.training.TrainRecipe` with the
    protocol's schedule: one decay at ``epochs // 2``).

    Attributes:
        epochs: passes over the distilled set (default: the published 1000).
        lr: initial learning rate (a learned lr from the artifact overrides it when ``use_learned_lr``).
        momentum, weight_decay: SGD settings.
        batch_size: training batch size.
        lr_decay_factor: multiplier applied once, after ``epochs // 2`` epochs.
        dsa_strategy: per-sample DSA strategy at train time (``"none"`` = the identity DSA, no augmentation).
        use_learned_lr: use the artifact's learned lr (MTT) instead of ``lr`` when present.
        lr_milestones: fractions of ``epochs`` from which the lr is multiplied (once more) by ``lr_decay_factor``.
        augmentation: ``"dsa"`` or ``"idc"`` (:class:`~lightning_dd.training.TrainRecipe`).
        cutmix_prob: CutMix probability per batch (IDC: 0.5).
        name: the named recipe it came from (reports say which recipe produced them).
    """

    epochs: int = DEFAULT_STUDENT_EPOCHS
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    lr_decay_factor: float = 0.1
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    use_learned_lr: bool = True
    lr_milestones: tuple[float, ...] = (0.5,)
    augmentation: str = "dsa"
    cutmix_prob: float = 0.0
    name: str = "reference"

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr_milestones or any(not 0 < f < 1 for f in self.lr_milestones):
            raise ValueError(f"lr_milestones must be fractions of the epochs in (0, 1), got {self.lr_milestones}")
        self.train_recipe()  # validates the remaining fields (lr, momentum, strategy, ...) with clear messages

    @classmethod
    def named(cls, name: str, default_strategy: str | None = None, **overrides: Any) -> StudentRecipe:
        """A recipe of :data:`STUDENT_RECIPES` (``"reference"``: DC/DSA/DM's ``evaluate_synset``; ``"idc"``: IDC's
        ``train.py``), with ``overrides`` (``None`` values ignored) on top. ``default_strategy`` (e.g. the artifact's
        DSA strategy) is used when the recipe brings no augmentation strategy of its own and none is overridden."""
        if name not in STUDENT_RECIPES:
            raise ValueError(f"unknown evaluation recipe {name!r}; allowed: {', '.join(STUDENT_RECIPES)}")
        base = dict(STUDENT_RECIPES[name])
        if default_strategy is not None:
            if "dsa_strategy" in base and "flip" not in default_strategy.split("_"):
                # the dataset forbids flips (digits): drop it from the recipe's own strategy, as IDC's remove_aug
                base["dsa_strategy"] = "_".join(op for op in base["dsa_strategy"].split("_") if op != "flip")
            base.setdefault("dsa_strategy", default_strategy)
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(**{**base, **given, "name": name})

    @property
    def milestone_epochs(self) -> tuple[int, ...]:
        """The 0-based epochs from which the learning rate is decayed (once more): ``epochs * f`` rounded down,
        exactly for fractions such as 2/3 (``2 * epochs // 3``, as the references compute them)."""
        out = []
        for f in self.lr_milestones:
            q = Fraction(f).limit_denominator(1000)
            out.append(max(0, min(self.epochs - 1, self.epochs * q.numerator // q.denominator)))
        return tuple(sorted(set(out)))

    @property
    def decay_epoch(self) -> int:
        """The epoch (0-based) from which the first decayed learning rate is used."""
        return self.milestone_epochs[0]

    def train_recipe(self, lr: float | None = None) -> TrainRecipe:
        """The equivalent :class:`~lightning_dd.training.TrainRecipe` (``lr`` overrides :attr:`lr`)."""
        return TrainRecipe(epochs=self.epochs, lr=self.lr if lr is None else lr, momentum=self.momentum,
                           weight_decay=self.weight_decay, batch_size=self.batch_size,
                           lr_milestones=self.milestone_epochs, lr_decay_factor=self.lr_decay_factor,
                           dsa_strategy=self.dsa_strategy, augmentation=self.augmentation,  # type: ignore[arg-type]
                           cutmix_prob=self.cutmix_prob)


    def optimizer(self, params: ParamsT, lr: float | None = None) -> torch.optim.SGD:
        """``SGD(lr, momentum, weight_decay)``; ``lr`` overrides :attr:`lr` when given."""
        return self.train_recipe().optimizer(params, lr=lr)

    def scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.MultiStepLR:
        """Per-epoch schedule: x ``lr_decay_factor`` at :attr:`decay_epoch`."""
        scheduler = self.train_recipe().scheduler(optimizer)
        assert scheduler is not None  # one milestone, always
        return scheduler

    def augmenter(self) -> DSA:
        """The per-sample DSA of the protocol; the identity :meth:`DSA.identity` for ``"none"`` (never ``None``)."""
        return self.train_recipe().augmenter()

#: the named evaluation recipes (``StudentRecipe.named``): the fields that differ from the defaults
STUDENT_RECIPES: dict[str, dict[str, Any]] = {
    # VICO-UoE/DatasetCondensation utils.py evaluate_synset (DC/DSA/DM, and CMI/IID on them)
    "reference": {},
    # snu-mllab/Efficient-Dataset-Condensation train.py: batch 64, MultiStepLR [2E/3, 5E/6] x0.2, IDC's augmentation
    # (flip and color always + one of crop/scale/rotate, per image; cutout left out for CutMix), CutMix p 0.5
    "idc": {"batch_size": 64, "lr_milestones": (2 / 3, 5 / 6), "lr_decay_factor": 0.2, "augmentation": "idc",
            "dsa_strategy": "color_crop_flip_scale_rotate", "cutmix_prob": 0.5},
}



def student_loss(logits: Tensor, labels: Tensor, soft_targets: Tensor | None = None) -> Tensor:
    """Cross-entropy with hard labels, or with the softmax of soft-label logits when given
    (:func:`~lightning_dd.training.classification_loss`)."""
    return classification_loss(logits, labels, soft_targets)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and population std (``np.std``, as the papers report)."""
    if not values:
        raise ValueError("no accuracies to summarise")
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def student_progress(total: int, method: str, epochs: int, show: bool) -> tqdm:
    """The progress bar over ``total`` student trainings on a ``method`` set (stderr; transient)."""
    return tqdm(total=total, desc=f"students on {method} ({epochs} epochs)", disable=not show, leave=False,
                file=sys.stderr, dynamic_ncols=True)
