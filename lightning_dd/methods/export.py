"""Export of the distilled set: the artifact at the end of ``fit`` and image grids along the way.

Every :class:`~lightning_dd.methods.DistillationModule` returns this callback from ``configure_callbacks`` (unless the
Trainer already has one), so a run writes one artifact by default. It lives beside the methods (the base imports it;
``lightning_dd.callbacks`` re-exports it) and needs only what a module exposes (``distilled_set()``,
``assert_finite()``, ``iteration``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor

from lightning_dd._atomic import check_writable, write_or_fallback
from lightning_dd.artifact import DistilledSet
from lightning_dd.augment.zca import ZCA
from lightning_dd.data.spaces import as_zca, to_pixels
from lightning_dd.visualize import image_grid, save_grid, side_by_side

__all__ = ["ExportDistilledSet", "checked_on_rank_zero", "run_dir", "viewable_images"]


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
    """The run's log directory (where the artifact, grids and results go by default).

    ``trainer.log_dir`` is a collective under DDP (rank 0 broadcasts it): call this on every rank -- callbacks do it
    in ``setup`` and keep the result -- never from a rank-0-only branch, where the other ranks would not join.
    """
    return Path(trainer.log_dir or trainer.default_root_dir)


def checked_on_rank_zero(trainer: L.Trainer, check: Callable[[], object]) -> None:
    """Run ``check`` on rank 0 and raise its error on *every* rank (no rank is left waiting at a collective)."""
    failure: tuple[str, str] | None = None
    if trainer.is_global_zero:
        try:
            check()
        except OSError as err:
            failure = (type(err).__name__, str(err))
    failure = trainer.strategy.broadcast(failure, src=0)
    if failure is not None:
        kind = {cls.__name__: cls for cls in (IsADirectoryError, NotADirectoryError, PermissionError)}
        raise kind.get(failure[0], OSError)(failure[1])


def _log_image(trainer: L.Trainer, tag: str, image: Tensor, step: int) -> None:
    """Give ``image`` ``(3, H, W)`` to every logger that takes images (TensorBoard's ``add_image``)."""
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_image"):
            experiment.add_image(tag, image, step)


class ExportDistilledSet(Callback):
    """Write the distilled set (rank 0, atomically) at the end of ``fit``, and PNG grids of the images.

    The output paths are resolved and checked for writability in ``setup``, before any compute; a write that still
    fails at the end (the disk filled, the folder vanished) goes to a fallback file whose path is reported. The
    grid is written before the artifact, so a new ``.pt`` never sits beside an old ``.png``.

    Args:
        path: artifact file; ``None`` = ``<log dir>/distilled.pt``; ``""`` = no artifact (grids still follow
            ``grid_every_n_iterations``). The final grid is written next to it (``.png``: one captioned row per
            class), and the initial set beside the final one (``<stem>_vs_initial.png``).
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
        self._run_dir: Path | None = None
        self._logged_iteration = -1
        self._zca: ZCA | None = None  # the run's ZCA, built once (its state does not change during a run)
        self._initial: Tensor | None = None  # the initial grid (rank 0), shown beside the final one

    @property
    def artifact_path(self) -> Path | None:
        """The artifact file this run writes (known after ``setup``); ``None`` when disabled."""
        if self.path == "" or self._run_dir is None:
            return None
        return Path(self.path) if self.path else self._run_dir / "distilled.pt"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._run_dir = directory = run_dir(trainer)  # every rank: a collective under DDP
        artifact = self.artifact_path

        def check() -> None:
            if artifact is not None:
                check_writable(artifact, "artifact")
            if self.grid_every_n_iterations:
                check_writable(directory / "images" / "iteration_000000.png", "image grid")

        checked_on_rank_zero(trainer, check)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module: _Exportable = pl_module  # type: ignore[assignment]
        if trainer.is_global_zero and self.artifact_path is not None:
            self._initial = self._picture(module.distilled_set(), f"initial (iteration {module.iteration})")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        every = self.grid_every_n_iterations
        module: _Exportable = pl_module  # type: ignore[assignment]
        count = module.iteration
        if every and count % every == 0 and trainer.is_global_zero and self._run_dir is not None:
            self._grid(trainer, module.distilled_set(), self._run_dir / "images" / f"iteration_{count:06d}.png",
                       count)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        module: _Exportable = pl_module  # type: ignore[assignment]
        module.assert_finite()
        path = self.artifact_path
        if path is None or not trainer.is_global_zero:
            return
        distilled = module.distilled_set()
        # the grid first: an interrupted pair leaves a new PNG beside the old artifact, never a new artifact
        # beside an old PNG
        try:
            final = self._grid(trainer, distilled, path.with_suffix(".png"), module.iteration)
            if self._initial is not None:
                pair = save_grid(side_by_side([self._initial, final]), path.with_name(f"{path.stem}_vs_initial.png"))
                _log_image(trainer, "initial_vs_final", pair, module.iteration)
        except OSError as err:
            warnings.warn(f"could not write the image grid {str(path.with_suffix('.png'))!r} ({err})", stacklevel=1)
        self.exported_path = write_or_fallback(path, distilled.save, "distilled set")
        pl_module.exported_path = self.exported_path  # type: ignore[assignment]  # convenience for Python users
        rank_zero_info(f"[lightning_dd] {module.method_name} distilled set written to {self.exported_path}")

    def _picture(self, distilled: DistilledSet, title: str) -> Tensor:
        """The captioned grid of ``distilled`` (one row per class)."""
        per_row = max(1, distilled.images.shape[0] // max(1, distilled.num_classes))
        if self._zca is None:
            self._zca = as_zca(distilled.zca)  # None outside the zca space
        return image_grid(viewable_images(distilled, self._zca), per_row, distilled.class_names, title)

    def _grid(self, trainer: L.Trainer, distilled: DistilledSet, path: Path, iteration: int) -> Tensor:
        grid = save_grid(self._picture(distilled, f"{distilled.method} IPC {distilled.ipc}, iteration {iteration}"),
                         path)
        if iteration != self._logged_iteration:
            _log_image(trainer, "synthetic_images", grid, iteration)
            self._logged_iteration = iteration
        return grid

    def state_dict(self) -> dict[str, Any]:
        return {"logged_iteration": self._logged_iteration}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._logged_iteration = int(state_dict.get("logged_iteration", -1))


