"""The regularizer hook: what a method hands to plug-in regularizers, and how their terms are added.

A regularizer is a plain ``nn.Module`` (no Lightning, no method import) that turns a :class:`RegularizerContext`
into named terms; :class:`RegularizationMixin` (part of every ``DistillationModule``, usable by any module of
yours) holds the attached regularizers, asks the method for the views they need, and sums ``weight * term``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

#: views a regularizer may need from the method's matching step (computed only when some regularizer asks)
VIEW_AUGMENTED = "augmented"  # the synthetic images after the iteration's (siamese) augmentation
VIEW_FEATURE_MAPS = "feature_maps"  # the matching network's last feature maps of the augmented real/synthetic images


@dataclass
class Views:
    """What one image step of a method hands to the regularizers (and to the logs), beyond its loss.

    Every field is optional: a method fills what it computed anyway (and what :attr:`Regularizer.needs` asks for).

    Attributes:
        synthetic: the synthetic images this image step optimises, ``(N, C, H, W)`` with gradient, in the set's
            space; ``None`` = the whole decoded set (one step per iteration). Per-class methods pass one class's
            (decoded) images here, with their ``labels``.
        labels: int64 ``(N,)`` classes of ``synthetic`` (required when ``synthetic`` is given).
        augmented: ``(N, C, H, W)`` ``synthetic`` after the step's augmentation (same parameters as the real batch).
        syn_feature_maps: ``(N, c, h, w)`` the matching network's last maps of ``augmented``.
        real_feature_maps: ``(M, c, h, w)`` the same network's maps of the (augmented) real batch, detached.
        real_labels: int64 ``(M,)`` classes of ``real_feature_maps``.
        logs: extra scalars to log under ``train/<name>`` (e.g. per-part losses).
    """

    synthetic: Tensor | None = None
    labels: Tensor | None = None
    augmented: Tensor | None = None
    syn_feature_maps: Tensor | None = None
    real_feature_maps: Tensor | None = None
    real_labels: Tensor | None = None
    logs: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.synthetic is None) != (self.labels is None):
            raise ValueError("Views.synthetic and Views.labels go together: give both or neither")


@dataclass
class RegularizerContext:
    """Everything a regularizer may use at one iteration.

    Attributes:
        synthetic: the current synthetic images ``(N, C, H, W)`` (class-sorted, with gradient), in ``space``.
        labels: int64 ``(N,)`` class of each synthetic image.
        num_classes: number of classes ``K``.
        space: ``"normalized"`` (``(x - mean) / std``), ``"pixels"`` ([0, 1]) or ``"zca"``.
        mean, std: the dataset's per-channel normalisation.
        dataset: registry name of the dataset; image_shape: ``(C, H, W)``.
        iteration: completed distillation iterations before this one (its 0-based index; not ``global_step``,
            which counts optimizer steps); seed: the run seed (regularizers derive their own streams from it).
        augmented: ``(N, C, H, W)`` synthetic images after the matching step's augmentation (same parameters as the
            real batch), or ``None`` when the method does not augment.
        syn_feature_maps: ``(N, c, h, w)`` matching network's last maps of ``augmented``; real_feature_maps:
            ``(M, c, h, w)`` of the (augmented) real batch, detached; real_labels: ``(M,)``.
        zca: the run's fitted :class:`~lightning_dd.augment.zca.ZCA` in the ``"zca"`` space (proxies trained on
            normalised images get ``zca.inverse`` then the normalisation), else ``None``.
    """

    synthetic: Tensor
    labels: Tensor
    num_classes: int
    space: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dataset: str
    image_shape: tuple[int, int, int]
    iteration: int = 0
    seed: int = 0
    augmented: Tensor | None = None
    syn_feature_maps: Tensor | None = None
    real_feature_maps: Tensor | None = None
    real_labels: Tensor | None = None
    zca: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


class Regularizer(nn.Module, ABC):
    """Base of plug-in regularizers. Subclasses set :attr:`needs` and implement :meth:`terms`.

    Each term has its own weight (``weights[name]``); :attr:`scale` multiplies all of them (λ schedules set it).
    ``every_n_steps`` computes the terms only at iterations ``0, N, 2N, ...`` (cost control; it counts distillation
    iterations, whatever the number of image steps per iteration).
    """

    #: views of the matching step this regularizer reads (VIEW_AUGMENTED, VIEW_FEATURE_MAPS); a class default that
    #: an instance may replace (CMI with ``augmented=True``)
    needs: frozenset[str] = frozenset()

    def __init__(self, weights: dict[str, float], every_n_steps: int = 1) -> None:
        super().__init__()
        if isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"{type(self).__name__}: every_n_steps must be an integer >= 1, got {every_n_steps!r}")
        self.every_n_steps = every_n_steps
        for name, value in weights.items():
            # NaN passes `value < 0` and would surface later as a NaN loss blamed on the learning rate
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"{type(self).__name__}: weight {name!r} must be a finite number >= 0, got {value!r}")
        self.weights = {name: float(value) for name, value in weights.items()}
        self.scale = 1.0

    def effective_weights(self) -> dict[str, float]:
        return {name: self.scale * value for name, value in self.weights.items()}

    def active(self, ctx: RegularizerContext) -> bool:
        """Whether to compute the terms at this iteration: every ``every_n_steps``-th iteration."""
        return ctx.iteration % self.every_n_steps == 0

    @abstractmethod
    def terms(self, ctx: RegularizerContext) -> dict[str, Tensor]:
        """Unweighted scalar terms by name (the keys of :attr:`weights`)."""

    def describe(self) -> dict[str, Any]:
        """JSON-like settings recorded in the distilled-set artifact (class and base weights; subclasses add)."""
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}", "weights": dict(self.weights),
                "every_n_steps": self.every_n_steps}

    def state_for_checkpoint(self) -> dict[str, Any]:
        """Resumable state (e.g. a generator's), saved in the method's checkpoint; default none."""
        return {}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_for_checkpoint` returned."""


class RegularizationMixin:
    """Gives a LightningModule (every ``DistillationModule``, or your own) attachable regularizers.

    ``self.regularizers`` is an ``nn.ModuleList`` (regularizers hold no trainable parameters and keep frozen
    networks unregistered); :meth:`regularize` returns ``sum(weight * term)`` and the logged values.
    """

    regularizers: nn.ModuleList

    def init_regularizers(self, regularizers: Iterable[Regularizer] | None) -> None:
        self.regularizers = nn.ModuleList()
        for reg in regularizers or ():
            self.attach_regularizer(reg)

    def attach_regularizer(self, regularizer: Regularizer) -> None:
        if not isinstance(regularizer, Regularizer):
            raise TypeError(f"regularizers must be lightning_dd Regularizer modules, got {type(regularizer).__name__}")
        self.regularizers.append(regularizer)

    def attached_regularizers(self) -> Iterator[Regularizer]:
        """The attached regularizers (``self.regularizers`` iterates as plain ``nn.Module``s; only
        :meth:`attach_regularizer` adds to it, and it admits :class:`Regularizer` instances only)."""
        return cast("Iterator[Regularizer]", iter(self.regularizers))

    def needs_view(self, view: str) -> bool:
        """Whether an attached regularizer needs ``view`` from the matching step."""
        return any(view in reg.needs for reg in self.attached_regularizers())

    def regularize(self, ctx: RegularizerContext) -> tuple[Tensor, dict[str, Tensor]]:
        """``(total, logs)``: total = sum over regularizers and terms of ``weight * term`` (terms of weight 0 are
        computed without gradient, only for logging, so that λ = 0 leaves the images bit-identical)."""
        total = ctx.synthetic.new_zeros(())
        logs: dict[str, Tensor] = {}
        for reg in self.attached_regularizers():
            if not reg.active(ctx):
                continue
            weights = reg.effective_weights()
            with torch.set_grad_enabled(torch.is_grad_enabled() and any(w != 0 for w in weights.values())):
                terms = reg.terms(ctx)
            for name, value in terms.items():
                logs[name] = value.detach()
                weight = weights.get(name, 0.0)
                if weight != 0:
                    total = total + weight * value
        return total, logs
