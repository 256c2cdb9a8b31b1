"""Distribution Matching (DM; Zhao & Bilen, WACV 2023; VICO-UoE/DatasetCondensation ``main_DM.py``).

Each iteration re-draws a randomly initialised network (from the run's generator), freezes it, and matches the mean
embedding of the real and the synthetic images of every class after the same (siamese) DSA transform:

    loss = sum_c || mean_i embed(DSA_c(x_real[c, i])) - mean_j embed(DSA_c(x_syn[c, j])) ||_2^2

then takes one image step (SGD lr 1, momentum 0.5 in the reference). The distance is
:func:`lightning_dd.losses.distribution_matching`.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from lightning_dd.data.protocol import RealDataSource
from lightning_dd.losses import distribution_matching
from lightning_dd.methods.base import Views
from lightning_dd.methods.matching import MatchingModule, matching_network
from lightning_dd.networks import HelperNetworks, NetworkName, has_batchnorm, reinitialize_
from lightning_dd.regularizers.base import VIEW_AUGMENTED, VIEW_FEATURE_MAPS


class DM(MatchingModule):
    """Distribution Matching with a fresh random frozen network per iteration.

    Args:
        network: embedding network name (``lightning_dd.networks.NETWORK_NAMES``), default the reference ConvNet-3.
        classes_per_forward: how many classes go through the network in one forward pass. ``"auto"``: all classes
            in one forward on accelerators (fewest launches) and for BatchNorm networks (whose statistics must
            see every class, as the reference's BN branch), one class per forward on the CPU (faster there: the
            reference's per-class loop). Every setting gives the same loss for instance-norm networks.
        real_images_per_forward: the real images (no gradient) go through the network in forwards of at most this
            many images. ``"auto"``: 16 on the CPU for networks without BatchNorm (keeps activations small enough for
            the allocator to reuse: no page faults per iteration; ``benchmarks/dm_iteration_vs_official.py``), all at
            once otherwise; ``None``: all at once. The loss is the same up to float rounding.
        **kwargs: the arguments of :class:`~lightning_dd.methods.base.DistillationModule` (``ipc``, ``optimizer``,
            ``seed``, ...; the reference uses SGD lr 1, momentum 0.5, ``init="real"``).
    """

    method_name = "DM"

    def __init__(self, network: NetworkName = "convnet", classes_per_forward: int | Literal["auto"] = "auto",
                 real_images_per_forward: int | Literal["auto"] | None = "auto", **kwargs: Any) -> None:
        for name, value in (("classes_per_forward", classes_per_forward),
                            ("real_images_per_forward", real_images_per_forward)):
            if value not in ("auto", None) and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be 'auto' or an integer >= 1, got {value!r}")
        if classes_per_forward is None:
            raise ValueError("classes_per_forward must be 'auto' or an integer >= 1, got None")
        super().__init__(**kwargs)
        # re-drawn from the run's generator every iteration
        net = matching_network(self, network).requires_grad_(False)
        self.helpers = HelperNetworks(embedder=net)
        self.chunk_size = 0  # resolved in configure_method
        self.real_per_forward: int | None = None  # resolved in configure_method

    @property
    def embedder(self) -> nn.Module:
        return self.helpers["embedder"]

    def configure_method(self, data: RealDataSource) -> None:
        device = self.trainer.strategy.root_device
        self.chunk_size = self.resolve_chunk_size(device)
        self.real_per_forward = self.resolve_real_per_forward(device)

    def resolve_real_per_forward(self, device: torch.device) -> int | None:
        """Real images per forward for ``device`` under the ``real_images_per_forward`` setting."""
        setting = self.hparams["real_images_per_forward"]
        if setting != "auto":
            return None if setting is None else int(setting)
        return 16 if device.type == "cpu" and not has_batchnorm(self.embedder) else None

    def resolve_chunk_size(self, device: torch.device) -> int:
        """Classes per forward for ``device`` under the ``classes_per_forward`` setting."""
        setting = self.hparams["classes_per_forward"]
        if setting != "auto":
            return min(int(setting), self.num_classes)
        return self.num_classes if device.type != "cpu" or has_batchnorm(self.embedder) else 1

    def on_fit_start(self) -> None:
        self.helpers.on(self.device)

    def match(self, real: Tensor) -> tuple[Tensor, Views]:
        net = self.helpers.on(real.device)["embedder"]
        reinitialize_(net, self.generator)
        net.train()
        params = None if self.dsa.is_identity else self.dsa.sample(self.num_classes, self.generator,
                                                                   image_size=tuple(real.shape[-2:]))
        feature_maps = self.needs_view(VIEW_FEATURE_MAPS)
        out = distribution_matching(net, real, self.synthetic.by_class(), self.dsa, params, self.chunk_size or 1,
                                    keep_augmented=self.needs_view(VIEW_AUGMENTED), keep_feature_maps=feature_maps,
                                    real_images_per_forward=self.real_per_forward)
        real_labels = None
        if feature_maps:
            real_labels = torch.arange(self.num_classes, device=real.device).repeat_interleave(real.shape[1])
        return out.loss, Views(augmented=out.augmented, syn_feature_maps=out.syn_feature_maps,
                               real_feature_maps=out.real_feature_maps, real_labels=real_labels)
