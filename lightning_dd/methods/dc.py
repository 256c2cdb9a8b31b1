"""Gradient matching: DC (Zhao et al., ICLR 2021) and DSA (Zhao & Bilen, ICML 2021).

One iteration (``VICO-UoE/DatasetCondensation: main.py``) re-draws a random network, then ``outer_loop`` times:

    for every class c (one fresh class-balanced real batch per outer step):
        g_r = d CE(net(A_c(x_real[c])), c) / d theta            # constant
        g_s = d CE(net(A_c(x_syn[c])), c) / d theta             # graph kept: second order into the images
    loss = sum_c D(g_s, g_r)                                     # lightning_dd.losses.class_gradient_distances
    one image step on loss (+ regularizers)
    (not after the last outer step) train net for inner_loop epochs on the synthetic set (SGD lr_net, batch 256,
        per-batch DSA for DSA; training.fit_classifier)

``A_c`` is the identity for DC and the siamese DSA of class ``c`` for DSA (one op and parameter set shared by the
class's real and synthetic images). ``(outer_loop, inner_loop)`` come from the reference's ``get_loops`` table
(:data:`LOOPS`). BatchNorm networks follow the reference's branch: before each outer step 16 real images per class
pass through the network in train mode (updating the running statistics), then the BatchNorm layers are put in eval
mode for the matching; the inner training runs in train mode again.

Counting: an iteration takes ``outer_loop`` image steps, so ``trainer.max_steps = outer_loop * iterations``
(the reference's 1000 iterations at IPC 10 are ``max_steps 10000``).

DDP: every rank draws its own real batches (the sampler is rank-aware) and the same network, augmentation and
inner-training draws (the run's generator is the same on every rank); the image gradients are averaged, so the
synthetic set, and with it the inner network trained on it, stays identical across ranks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from lightning_dd.data.protocol import RealDataSource, RealDemand
from lightning_dd.losses import class_gradient_distances, matched_parameters
from lightning_dd.losses.gradient import GRADIENT_METRICS, GradientMetric
from lightning_dd.methods.base import Views
from lightning_dd.methods.matching import MatchingModule, check_batched, check_int, matching_network, resolve_batched
from lightning_dd.networks import HelperNetworks, NetworkName, has_batchnorm, reinitialize_
from lightning_dd.regularizers.base import VIEW_FEATURE_MAPS
from lightning_dd.training import TrainRecipe, fit_classifier

__all__ = ["DC", "DSA", "LOOPS", "get_loops"]

#: IPC -> (outer_loop, inner_loop): VICO-UoE/DatasetCondensation ``utils.py get_loops`` (1 ... 50) and the extended
#: table of ndhg1213/CMIDD ``pretrain/utils.py`` and VincenDen/IID ``DM+ours/utils.py`` (11, 100 ... 1000)
LOOPS: dict[int, tuple[int, int]] = {
    1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10),
    11: (10, 50), 100: (50, 10), 200: (200, 20), 400: (200, 20), 500: (200, 20), 600: (200, 20), 800: (200, 20),
    1000: (1000, 30),
}
#: real images per class that set the BatchNorm statistics before each outer step (the reference's ``BNSizePC``)
BN_IMAGES_PER_CLASS = 16


def get_loops(ipc: int) -> tuple[int, int]:
    """``(outer_loop, inner_loop)`` of the reference table for ``ipc``; other IPCs need explicit loops."""
    if ipc not in LOOPS:
        raise ValueError(f"no reference (outer_loop, inner_loop) for ipc={ipc} (tabled IPCs: {sorted(LOOPS)}); pass "
                         "model.outer_loop and model.inner_loop")
    return LOOPS[ipc]


class DC(MatchingModule):
    """Dataset Condensation with gradient matching; :class:`DSA` adds the siamese augmentation.

    Args:
        network: the matching network (re-drawn every iteration), default the reference ConvNet-3.
        metric: gradient distance, ``"ours"`` (the reference's layer-wise cosine, default), ``"mse"``, ``"cos"``
            or ``"l1"``.
        outer_loop, inner_loop: image steps per iteration and inner-training epochs between them; ``"auto"``:
            :func:`get_loops` of the IPC.
        lr_net: SGD learning rate of the inner training (reference 0.01, no momentum, no weight decay).
        batch_train: batch size of the inner training (reference 256).
        batched_classes: per-class gradients one class at a time (``False``, the reference loop), all classes in
            one vmapped pass (``True``), or ``"auto"``: batched on accelerators, the loop on the CPU (faster there;
            ``benchmarks/gradient_matching_vs_official.py``). BatchNorm networks (statistics frozen for matching)
            allow both.
        **kwargs: the arguments of :class:`~lightning_dd.methods.base.DistillationModule` (reference: SGD lr 0.1,
            momentum 0.5 on the images; DC ``dsa_strategy="none"``, DSA the dataset's strategy).
    """

    method_name = "DC"

    def __init__(self, network: NetworkName = "convnet", metric: GradientMetric = "ours",
                 outer_loop: int | Literal["auto"] = "auto", inner_loop: int | Literal["auto"] = "auto",
                 lr_net: float = 0.01, batch_train: int = 256, batched_classes: bool | Literal["auto"] = "auto",
                 dsa_strategy: str = "none",
                 optimizer: OptimizerCallable = lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5),
                 **kwargs: Any) -> None:
        super().__init__(dsa_strategy=dsa_strategy, optimizer=optimizer, **kwargs)
        loops = get_loops(self.ipc) if "auto" in (outer_loop, inner_loop) else (0, 0)
        auto = " (or 'auto')"
        self.outer_loop = check_int("outer_loop", loops[0] if outer_loop == "auto" else outer_loop, 1, auto)
        self.inner_loop = check_int("inner_loop", loops[1] if inner_loop == "auto" else inner_loop, 0, auto)
        check_batched(batched_classes)
        net = matching_network(self, network)
        self.helpers = HelperNetworks(net=net)
        if metric not in GRADIENT_METRICS:
            raise ValueError(f"metric must be one of {GRADIENT_METRICS}, got {metric!r}")
        self.metric: GradientMetric = metric
        self.matched = matched_parameters(net, "all")
        self.inner_recipe = TrainRecipe(epochs=max(self.inner_loop, 1), lr=lr_net, momentum=0.0, weight_decay=0.0,
                                        batch_size=check_int("batch_train", batch_train))
        self.batched = False  # resolved in configure_method

    @property
    def image_steps_per_iteration(self) -> int:  # type: ignore[override]
        return self.outer_loop

    def real_demand(self) -> RealDemand:
        """A fresh class-balanced real batch for every outer step."""
        return RealDemand(class_batches=self.outer_loop)

    def configure_method(self, data: RealDataSource) -> None:
        self.batched = resolve_batched(self.hparams["batched_classes"], self.trainer.strategy.root_device)
        self.inner_recipe = dataclasses.replace(self.inner_recipe, dsa_strategy=self.dsa.strategy or "none")

    def on_fit_start(self) -> None:
        self.helpers.on(self.device)

    def distill_step(self, batch: tuple[Tensor, Tensor]) -> None:
        parts, _, _ = self.split_real(batch)
        net = self.helpers.on(parts.device)["net"]
        reinitialize_(net, self.generator)
        net.train()
        for step in range(self.outer_loop):
            real = parts[step]
            if has_batchnorm(net):
                self.freeze_batchnorm(net, real[:, :BN_IMAGES_PER_CLASS])
            loss, views = self.match(real)
            self.image_step(loss, views)
            if step == self.outer_loop - 1 or self.inner_loop == 0:
                continue
            images, labels = self.synthetic.decode()
            fit_classifier(net, images.detach().clone(), labels, self.inner_recipe, self.generator)

    @staticmethod
    def freeze_batchnorm(net: nn.Module, real: Tensor) -> None:
        """The reference's BatchNorm branch: real ``(K, 16, C, H, W)`` through ``net`` in train mode (running
        statistics updated), then every BatchNorm layer in eval mode."""
        net.train()
        with torch.no_grad():
            net(real.flatten(0, 1))
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()

    def match(self, real: Tensor) -> tuple[Tensor, Views]:
        """One outer step's loss: the summed per-class gradient distance of the current network on real
        ``(K, k, C, H, W)`` and the synthetic set, and the views regularizers may use."""
        net = self.helpers["net"]
        syn = self.synthetic.by_class()
        k = real.shape[1]
        real_flat, syn_flat = real.flatten(0, 1), syn.flatten(0, 1)
        if not self.dsa.is_identity:
            params = self.dsa.sample(self.num_classes, self.generator, image_size=tuple(real.shape[-2:]))
            real_flat, syn_flat = self.dsa.apply(real_flat, params), self.dsa.apply(syn_flat, params)
        classes = torch.arange(self.num_classes, device=real.device)
        distances = class_gradient_distances(
            net, real_flat.view_as(real), syn_flat.view_as(syn), classes, metric=self.metric,
            parameters=self.matched, batched=self.batched)
        views = Views(augmented=None if self.dsa.is_identity else syn_flat)
        if self.needs_view(VIEW_FEATURE_MAPS):
            with torch.no_grad():
                views.real_feature_maps = net.feature_map(real_flat)  # type: ignore[operator]
            views.syn_feature_maps = net.feature_map(syn_flat)  # type: ignore[operator]
            views.real_labels = classes.repeat_interleave(k)
        return distances.sum(), views


class DSA(DC):
    """DC with differentiable siamese augmentation (the dataset's strategy by default: ``dsa_strategy="auto"``;
    the inner training then augments every batch too)."""

    method_name = "DSA"

    def __init__(self, dsa_strategy: str = "auto", **kwargs: Any) -> None:
        super().__init__(dsa_strategy=dsa_strategy, **kwargs)

