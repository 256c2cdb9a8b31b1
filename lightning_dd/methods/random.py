"""The random baseline: IPC real images per class, chosen from the run seed, no optimisation.

It shares the base's initialisation, so with the same seed it is exactly the set an ``init="real"`` method starts
from, and it is exported as the same artifact, so every method is compared with it under one evaluation.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_dd.methods.base import DistillationModule


class RandomSelection(DistillationModule):
    """Random real subset (``ipc`` images per class). ``fit`` selects in ``setup``, exports and stops at once.

    Args:
        **kwargs: those of :class:`~lightning_dd.methods.base.DistillationModule` that apply (``ipc``,
            ``num_classes``, ``image_shape``, ``seed``, ``space``, ``artifact_path``); ``init`` is always ``"real"``
            and there is no augmentation, optimiser or regularizer.
    """

    method_name = "random"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(init="real", dsa_strategy="none", optimizer=torch.optim.SGD, regularizers=None, **kwargs)
        self.synthetic.images.requires_grad_(False)

    def distill_step(self, batch: Any) -> None:
        """Nothing to optimise: the selection happened in ``setup``; end the fit."""
        self.trainer.should_stop = True
