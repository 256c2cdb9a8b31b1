"""The random baseline: IPC real images per class, chosen from the run seed, no optimisation.

It shares the base's initialisation, so with the same seed it is exactly the set a ``init="real"`` method starts
from, and it is exported as the same artifact, so every method is compared with it under one evaluation.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from lightning_dd.methods.base import DistillationModule


class RandomSelection(DistillationModule):
    """Random real subset (``ipc`` images per class). ``fit`` selects, exports and stops after one step.

    Args: those of :class:`DistillationModule` that apply (``ipc``, ``num_classes``, ``image_shape``, ``seed``,
    ``artifact_path``); ``init`` is always ``"real"``.
    """

    method_name = "random"
    optimizes_images = False

    def __init__(
        self,
        ipc: int = 10,
        num_classes: int = 10,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        seed: int = 0,
        artifact_path: str | None = None,
    ) -> None:
        super().__init__(
            ipc=ipc,
            num_classes=num_classes,
            image_shape=image_shape,
            init="real",
            dsa_strategy="none",
            seed=seed,
            artifact_path=artifact_path,
        )
        self.synthetic.images.requires_grad_(False)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Any:
        """Nothing to optimise: the selection happened in ``setup``; end the fit."""
        self.trainer.should_stop = True
        return None
