"""Export of the distilled set: the artifact at the end of ``fit`` and image grids along the way.

Every :class:`~lightning_dd.methods.DistillationModule` returns this callback from ``configure_callbacks`` (unless the
Trainer already has one), so a run writes one artifact by default. It lives beside the methods (the base imports it;
``lightning_dd.callbacks`` re-exports it) and needs only what a module exposes (``distilled_set()``,
``assert_finite()``, ``iteration``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor

from lightning_dd.artifact import DistilledSet
from lightning_dd.augment.zca import ZCA
from lightning_dd.data.spaces import as_zca, to_pixels
from lightning_dd.visualize import save_image_grid

__all__ = ["ExportDistilledSet", "viewable_images"]


# What the hooks read from the module (a DistillationModule). The hooks receive it typed as a plain LightningModule,
# which declares none of this: hence `module: _Exportable = pl_module  # type: ignore[assignment]`.
class _Exportable(Protocol):
    method_name: str
    iteration: int

    def distilled_set(self) -> DistilledSet: ...

    def assert_finite(self) -> None: ...


def viewable_images(distilled: DistilledSet, zca: ZCA | None = None) -> Tensor:
    """The artifact's images as ``[0, 1]`` pixels ``(N, C, H, W)`` (inverse of its space's transform; clipped).

    ``zca``: the set's ZCA already built (its matrices are cached on it); default: rebuilt from ``distilled.zca``.
    """
    whitening = zca if zca is not None else as_zca(distilled.zca)
    pixels = to_pixels(distilled.images.detach().float().cpu(), distilled.space, distilled.mean, distilled.std,
                       whitening)
    return pixels.clamp(0, 1)


def run_dir(trainer: L.Trainer) -> Path:
    """The run's log directory (where the artifact, grids and results go by default)."""
    return Path(trainer.log_dir or trainer.default_root_dir)


class ExportDistilledSet(Callback):
    """Write the distilled set (rank 0, atomically) at the end of ``fit``, and PNG grids of the images.

    Args:
        path: artifact file; ``None`` = ``<log dir>/distilled.pt``; ``""`` = no artifact (grids still follow
            ``grid_every_n_iterations``). The final grid is written next to it (``.png``).
        grid_every_n_iterations: also write ``<log dir>/images/iteration_NNNNNN.png`` every N iterations (0: only the
            final grid). Grids go to the logger too when it takes images (TensorBoard), once per iteration.
    """

    def __init__(self, path: str | None = None, grid_every_n_iterations: int = 0) -> None:
        super().__init__()
        if isinstance(grid_every_n_iterations, bool) or grid_every_n_iterations < 0:
            raise ValueError(f"grid_every_n_iterations must be an integer >= 0, got {grid_every_n_iterations!r}")
        self.path = path
        self.grid_every_n_iterations = grid_every_n_iterations
        self.exported_path: Path | None = None
        self._logged_iteration = -1
        self._zca: ZCA | None = None  # the run's ZCA, built once (its state does not change during a run)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        every = self.grid_every_n_iterations
        module: _Exportable = pl_module  # type: ignore[assignment]
        count = module.iteration
        if every and count % every == 0 and trainer.is_global_zero:
            self._grid(trainer, module.distilled_set(), run_dir(trainer) / "images" / f"iteration_{count:06d}.png",
                       count)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module: _Exportable = pl_module  # type: ignore[assignment]
        module.assert_finite()
        if self.path == "" or not trainer.is_global_zero:
            return
        path = Path(self.path or run_dir(trainer) / "distilled.pt")
        distilled = module.distilled_set()
        self.exported_path = distilled.save(path)
        pl_module.exported_path = self.exported_path  # type: ignore[assignment]  # convenience for Python users
        self._grid(trainer, distilled, path.with_suffix(".png"), module.iteration)
        rank_zero_info(f"[lightning_dd] {module.method_name} distilled set written to {self.exported_path}")

    def _grid(self, trainer: L.Trainer, distilled: DistilledSet, path: Path, iteration: int) -> None:
        per_row = max(1, distilled.images.shape[0] // max(1, distilled.num_classes))
        if self._zca is None:
            self._zca = as_zca(distilled.zca)  # None outside the zca space
        grid = save_image_grid(viewable_images(distilled, self._zca), per_row, path)
        experiment = getattr(trainer.logger, "experiment", None) if trainer.logger else None
        if experiment is not None and hasattr(experiment, "add_image") and iteration != self._logged_iteration:
            experiment.add_image("synthetic_images", grid, iteration)
            self._logged_iteration = iteration

    def state_dict(self) -> dict[str, Any]:
        return {"logged_iteration": self._logged_iteration}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._logged_iteration = int(state_dict.get("logged_iteration", -1))


