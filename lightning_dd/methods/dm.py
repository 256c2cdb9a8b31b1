"""Distribution Matching (DM; Zhao & Bilen, WACV 2023).

Each iteration draws a fresh randomly initialised network (from the run's generator), freezes it, and matches the
mean embedding of the real and the synthetic images of every class after the same (siamese) DSA transform:

    loss = sum_c || mean_i embed(DSA_c(x_real[c, i])) - mean_j embed(DSA_c(x_syn[c, j])) ||_2^2

then takes one image-optimizer step (SGD lr 1, momentum 0.5 in the reference).
"""

from __future__ import annotations

from typing import Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from lightning_dd.augment import DSA, DSAParams
from lightning_dd.methods.base import DistillationModule, MatchResult, RealDataSource
from lightning_dd.networks import create_network, reinitialize_
from lightning_dd.regularizers.base import VIEW_AUGMENTED, VIEW_FEATURE_MAPS, Regularizer
from lightning_dd.seeding import STREAM_TRAIN, make_generator


def class_chunks(num_classes: int, classes_per_forward: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(num_classes)`` in chunks of ``classes_per_forward`` classes."""
    return [(c, min(c + classes_per_forward, num_classes)) for c in range(0, num_classes, classes_per_forward)]


class DM(DistillationModule):
    """Distribution Matching with a fresh random frozen network per iteration.

    Args:
        network: embedding network name (``lightning_dd.networks.NETWORK_NAMES``), default the reference ConvNet-3.
        classes_per_forward: how many classes go through the network in one forward pass. ``"auto"``: all classes
            in one forward on accelerators (fewest launches) and for BatchNorm networks (whose statistics must
            see every class, as the reference's BN branch), one class per forward on the CPU (faster there: the
            reference's per-class loop). Every setting gives the same loss for instance-norm networks.
        (the remaining arguments are those of :class:`DistillationModule`; the reference uses lr 1, momentum 0.5)
    """

    method_name = "DM"

    def __init__(
        self,
        ipc: int = 10,
        num_classes: int = 10,
        image_shape: tuple[int, int, int] = (3, 32, 32),
        network: str = "convnet",
        classes_per_forward: int | Literal["auto"] = "auto",
        init: Literal["real", "noise"] = "real",
        optimizer: OptimizerCallable = lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.5),
        dsa_strategy: str = "auto",
        seed: int = 0,
        artifact_path: str | None = None,
        image_grid_every_n_steps: int = 0,
        regularizers: list[Regularizer] | None = None,
    ) -> None:
        if classes_per_forward != "auto" and (not isinstance(classes_per_forward, int) or classes_per_forward < 1):
            raise ValueError(f"classes_per_forward must be 'auto' or an integer >= 1, got {classes_per_forward!r}")
        super().__init__(
            ipc=ipc,
            num_classes=num_classes,
            image_shape=image_shape,
            init=init,
            optimizer=optimizer,
            dsa_strategy=dsa_strategy,
            seed=seed,
            artifact_path=artifact_path,
            image_grid_every_n_steps=image_grid_every_n_steps,
            regularizers=regularizers,
        )
        c, h, w = image_shape
        # constructed without touching the global RNG; re-drawn from the run's generator every iteration
        net = create_network(network, c, num_classes, (h, w), generator=make_generator(seed, STREAM_TRAIN, 0))
        net.requires_grad_(False)
        # held in a list: a frozen helper network is not a registered submodule (no checkpoint bloat, no DDP sync)
        self._embedder: list[nn.Module] = [net]
        self.chunk_size = 0  # resolved in setup_method

    @property
    def embedder(self) -> nn.Module:
        return self._embedder[0]

    def setup_method(self, source: RealDataSource) -> None:
        self.chunk_size = self.resolve_chunk_size(self.trainer.strategy.root_device)

    def resolve_chunk_size(self, device: torch.device) -> int:
        """Classes per forward for ``device`` under the ``classes_per_forward`` setting."""
        setting = self.hparams.classes_per_forward
        if setting != "auto":
            return min(int(setting), self.num_classes)
        has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.embedder.modules())
        return self.num_classes if device.type != "cpu" or has_batchnorm else 1

    def on_fit_start(self) -> None:
        self.embedder.to(self.device)

    def match(self, real: Tensor) -> MatchResult:
        net = self.embedder.to(real.device)
        reinitialize_(net, self.generator)
        net.train()
        size = tuple(real.shape[-2:])
        params = None if self.dsa is None else self.dsa.sample(self.num_classes, self.generator, image_size=size)
        views = dm_forward(net, real, self.synthetic.by_class(), self.dsa, params, self.chunk_size or 1,
                           keep_augmented=self.needs_view(VIEW_AUGMENTED),
                           keep_feature_maps=self.needs_view(VIEW_FEATURE_MAPS))
        loss = views.pop("loss")
        if "real_feature_maps" in views:
            k = real.shape[1]
            views["real_labels"] = torch.arange(self.num_classes, device=real.device).repeat_interleave(k)
        return MatchResult(loss=loss, views=views)


def dm_loss(
    net: nn.Module,
    real: Tensor,
    synthetic: Tensor,
    dsa: DSA | None,
    dsa_params: DSAParams | None,
    classes_per_forward: int,
) -> Tensor:
    """Sum over classes of the squared distance between mean real and mean synthetic embeddings.

    Args:
        net: embedding network with ``embed(x) -> (B, D)``.
        real: ``(K, k, C, H, W)`` real images (no gradient is taken through them).
        synthetic: ``(K, ipc, C, H, W)`` synthetic images.
        dsa: a :class:`~lightning_dd.augment.DSA` or ``None``.
        dsa_params: parameters with one group per class (class ``c``'s real and synthetic images share group ``c``).
        classes_per_forward: classes per network forward (chunking changes speed/memory, not the value).

    Returns:
        scalar loss.
    """
    return dm_forward(net, real, synthetic, dsa, dsa_params, classes_per_forward)["loss"]


def dm_forward(
    net: nn.Module,
    real: Tensor,
    synthetic: Tensor,
    dsa: DSA | None,
    dsa_params: DSAParams | None,
    classes_per_forward: int,
    keep_augmented: bool = False,
    keep_feature_maps: bool = False,
) -> dict[str, Tensor]:
    """:func:`dm_loss` plus, on request, the views regularizers use (one forward either way).

    Returns:
        ``{"loss"}``, plus ``"augmented"`` ``(K*ipc, C, H, W)`` (the synthetic images after DSA) when
        ``keep_augmented``, and ``"syn_feature_maps"`` ``(K*ipc, c, h, w)`` / ``"real_feature_maps"`` ``(K*k, c, h, w)``
        (detached) when ``keep_feature_maps``.
    """
    num_classes, k = real.shape[:2]
    ipc = synthetic.shape[1]
    loss = real.new_zeros(())
    augmented, syn_maps, real_maps = [], [], []

    def embed(x: Tensor, keep: list[Tensor]) -> Tensor:
        if not keep_feature_maps:
            return net.embed(x)
        maps = net.feature_map(x)
        keep.append(maps)
        return net.embed_from_map(maps)

    for start, stop in class_chunks(num_classes, classes_per_forward):
        xr = real[start:stop].flatten(0, 1)
        xs = synthetic[start:stop].flatten(0, 1)
        chunk_params = None if dsa is None or dsa_params is None else dsa_params[start:stop]
        if chunk_params is not None:
            xs = dsa.apply(xs, chunk_params)
        if keep_augmented:
            augmented.append(xs)
        with torch.no_grad():
            if chunk_params is not None:
                xr = dsa.apply(xr, chunk_params)
            mean_real = embed(xr, real_maps).view(stop - start, k, -1).mean(1)
        mean_syn = embed(xs, syn_maps).view(stop - start, ipc, -1).mean(1)
        loss = loss + ((mean_real - mean_syn) ** 2).sum()
    out = {"loss": loss}
    if keep_augmented:
        out["augmented"] = torch.cat(augmented)
    if keep_feature_maps:
        out["syn_feature_maps"] = torch.cat(syn_maps)
        out["real_feature_maps"] = torch.cat(real_maps)
    return out
