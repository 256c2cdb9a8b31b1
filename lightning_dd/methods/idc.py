"""IDC: Dataset Condensation via Efficient Synthetic-Data Parameterization (Kim et al., ICML 2022).

Reference: ``snu-mllab/Efficient-Dataset-Condensation`` ``condense.py`` (``--reproduce``). The synthetic images are
raw [0, 1] pixels (space ``pixels``); each stored image holds a ``factor x factor`` grid of downscaled images
(multi-formation) that :meth:`~lightning_dd.synthetic.FactorizedSyntheticSet.decode` splits and upsamples, so a class
trains on ``ipc * factor**2`` images. The reference's outer iteration draws a fresh ConvNet and runs ``inner_loop``
(100) steps; one **iteration here is one of those inner steps**::

    every inner_loop-th iteration: a fresh random network and its SGD(lr_net, momentum 0.9, wd 5e-4); the stored
        images are clamped to [0, 1]
    for every class c:
        x_r = 64 real images of c; x_s = the decoded images of c (a random <= batch_syn_max of them)
        a_r, a_s = A(normalize(x_r)), A(normalize(x_s))     # one IDCAugment parameter set for both (siamese)
        loss_c = sum over the conv weights of (g_s - g_r)^2  # CE gradients; lightning_dd.losses, metric "mse"
        one image step on loss_c (+ regularizers on class c's decoded images)
    train the network one pass over ~n_data uniformly random real images (batch 64, per-image IDCAugment
        "color_crop" and CutMix p 0.5), continuing its optimizer

So ``trainer.max_steps = num_classes * iterations`` and the reference's 2000 outer iterations x 100 inner steps are
200 000 iterations. ``batched_classes`` computes every class's real gradients in one vmapped pass before the class
loop (the network does not change inside it, so the result is the loop's); the synthetic side stays per class, since
each class's loss is taken after the previous class's step (its momentum moves every image). BatchNorm networks
always loop (train-mode statistics per class, as the reference); ``batched_classes=True`` refuses them.

Known differences from the reference: normalisation uses each dataset's own statistics (the reference normalises
CIFAR-100 with CIFAR-10's mean/std); ``metric="cos"`` is VICO's cosine over all matched parameters flattened (IDC's
own ``cos`` sums per-layer row cosines, closer to ``"ours"``); ``--reproduce`` uses ``mse`` either way.

DDP: the network is rank-local. Every rank draws its own real batches and extra images, so each trains its own copy
on different real data (as the reference's single process would see more data); the image gradients are averaged,
which keeps the synthetic set identical across ranks.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from lightning_dd.augment import IDCAugment
from lightning_dd.data.protocol import RealDataSource, RealDemand
from lightning_dd.data.types import normalize
from lightning_dd.distributed import average_gradients
from lightning_dd.losses import class_gradients, gradient_distances, matched_parameters
from lightning_dd.losses.gradient import GRADIENT_METRICS, GradientMetric
from lightning_dd.methods.base import DistillationModule, Views
from lightning_dd.methods.matching import RealBatches, check_batched, check_int, matching_network, resolve_batched
from lightning_dd.networks import HelperNetworks, NetworkName, has_batchnorm, reinitialize_
from lightning_dd.regularizers.base import VIEW_AUGMENTED, VIEW_FEATURE_MAPS
from lightning_dd.seeding import STREAM_INIT, make_generator
from lightning_dd.synthetic import FactorizedSyntheticSet, SyntheticSet
from lightning_dd.training import TrainRecipe, fit_classifier

__all__ = ["IDC", "mix_init"]


class IDC(RealBatches, DistillationModule):
    """IDC with multi-formation, per-class image steps and a network trained on real data between them.

    Args:
        factor: images per side of each stored image (``-f``; 1 = IDC-I, no multi-formation).
        network: the matching network (reference ConvNet-3, instance norm).
        metric: gradient distance (reference ``"mse"``; ``"l1"`` for MNIST / Fashion-MNIST).
        matched: ``"conv"`` (the reference: conv weights only, no bias, no classifier) or ``"all"``.
        inner_loop: iterations per network (the reference's inner steps, 100).
        n_data: real images the network trains on after every iteration (reference 2000, in batches of
            ``batch_net``: ``ceil(n_data / batch_net) * batch_net`` images).
        batch_net, lr_net, momentum_net, weight_decay_net: the network's training (64, 0.01, 0.9, 5e-4).
        cutmix_prob: CutMix probability in the network's training (reference 0.5).
        net_strategy: the network's per-image augmentation (reference ``"color_crop"``).
        batch_syn_max: at most this many decoded images of a class per step (a random subset; reference 128).
        lr_scaling: ``"reference"`` multiplies the image learning rate by ``(ipc / 10) * (H / 32)**2`` (``H / 28``
            for MNIST), as the reference's ``tune_lr_img``; ``"none"`` uses it as given.
        batched_classes: the real gradients of all classes in one vmapped pass (``True``), one class at a time
            (``False``), or ``"auto"`` (batched on accelerators, the loop on the CPU); equal results.
        init: ``"mix"`` (the reference: the first ``ipc * factor**2`` train images of each class in dataset order,
            nearest-downscaled into the grids), ``"real"`` (the same layout from random images of the run seed) or
            ``"noise"`` (``N(0.5, 0.25^2)`` clamped to [0, 1], the reference's starting tensor).
        dsa_strategy: the matching augmentation (IDC's ``"color_crop_cutout"``, one parameter set per class step).
        space: must be ``"pixels"`` (``data.space pixels``; ``configs/method/idc.yaml`` sets it).
        optimizer: the image optimiser (reference SGD lr 5e-3, momentum 0.5, before ``lr_scaling``).
        **kwargs: the remaining arguments of :class:`~lightning_dd.methods.base.DistillationModule`.
    """

    method_name = "IDC"
    spaces = ("pixels",)
    inits = ("mix", "real", "noise")

    def __init__(self, factor: int = 2, network: NetworkName = "convnet", metric: GradientMetric = "mse",
                 matched: Literal["conv", "all"] = "conv", inner_loop: int = 100, n_data: int = 2000,
                 batch_net: int = 64, lr_net: float = 0.01, momentum_net: float = 0.9, weight_decay_net: float = 5e-4,
                 cutmix_prob: float = 0.5, net_strategy: str = "color_crop", batch_syn_max: int = 128,
                 lr_scaling: Literal["reference", "none"] = "reference",
                 batched_classes: bool | Literal["auto"] = "auto", init: Literal["mix", "real", "noise"] = "mix",
                 dsa_strategy: str = "color_crop_cutout",
                 space: Literal["normalized", "pixels", "zca"] = "pixels",
                 optimizer: OptimizerCallable = lambda p: torch.optim.SGD(p, lr=5e-3, momentum=0.5),
                 **kwargs: Any) -> None:
        for name, value, low in (("factor", factor, 1), ("inner_loop", inner_loop, 1), ("n_data", n_data, 0),
                                 ("batch_net", batch_net, 1), ("batch_syn_max", batch_syn_max, 1)):
            check_int(name, value, low)
        if lr_scaling not in ("reference", "none"):
            raise ValueError(f"lr_scaling must be 'reference' or 'none', got {lr_scaling!r}")
        check_batched(batched_classes)
        super().__init__(init=init, dsa_strategy=dsa_strategy, space=space, optimizer=optimizer,  # type: ignore[arg-type]
                         **kwargs)
        self.match_augment = IDCAugment(dsa_strategy)
        net = matching_network(self, network)
        self.helpers = HelperNetworks(net=net)
        if batched_classes is True and has_batchnorm(net):
            raise ValueError(f"batched_classes=True needs a network without BatchNorm (IDC matches in train mode, "
                             f"where batch statistics couple a vmapped class's images); {network!r} has BatchNorm: "
                             f"use false or 'auto'")
        if metric not in GRADIENT_METRICS:
            raise ValueError(f"metric must be one of {GRADIENT_METRICS}, got {metric!r}")
        self.metric: GradientMetric = metric
        self.matched = matched_parameters(net, matched)
        self.net_recipe = TrainRecipe(epochs=1, lr=lr_net, momentum=momentum_net, weight_decay=weight_decay_net,
                                      batch_size=batch_net, dsa_strategy=net_strategy, augmentation="idc",
                                      cutmix_prob=cutmix_prob)
        self.net_optimizer: torch.optim.SGD | None = None  # per network; its state is checkpointed
        self._pending_net_state: dict[str, Any] | None = None
        self.batched = False  # resolved in configure_method

    # ------------------------------------------------------------------ configuration
    def configure_synthetic(self) -> SyntheticSet:
        hp = self.hparams
        return FactorizedSyntheticSet(int(hp["num_classes"]), int(hp["ipc"]), tuple(hp["image_shape"]),
                                      factor=int(hp["factor"]), layout="multi_formation", space="pixels")

    @property
    def image_steps_per_iteration(self) -> int:  # type: ignore[override]
        return self.num_classes

    def real_demand(self) -> RealDemand:
        """One class-balanced batch for matching and the network's real images."""
        batch = int(self.hparams["batch_net"])
        return RealDemand(class_batches=1, extra_images=math.ceil(int(self.hparams["n_data"]) / batch) * batch)

    def lr_scale(self) -> float:
        """The factor ``lr_scaling`` applies to the image learning rate."""
        if self.hparams["lr_scaling"] == "none":
            return 1.0
        base = 28 if self.data_meta.get("dataset") == "mnist" else 32
        return (self.ipc / 10) * (self.synthetic.image_shape[1] / base) ** 2

    def configure_optimizers(self) -> Any:
        optimizer = super().configure_optimizers()
        scale = self.lr_scale()
        for group in optimizer.param_groups:
            group["lr"] *= scale
        return optimizer

    def configure_method(self, data: RealDataSource) -> None:
        # BatchNorm nets loop over classes whatever the device (train-mode statistics per class, as the reference)
        batched = resolve_batched(self.hparams["batched_classes"], self.trainer.strategy.root_device)
        self.batched = batched and not has_batchnorm(self.helpers["net"])

    def initialize_images(self, source: RealDataSource) -> None:
        n = self.ipc * self.synthetic.factor ** 2
        generator = make_generator(self.seed, STREAM_INIT)
        if self.init_scheme == "noise":
            noise = torch.randn(self.synthetic.images.shape, generator=generator) / 4 + 0.5
            self.synthetic.fill_(noise.clamp(0, 1))
            return
        if self.init_scheme == "mix":
            store = getattr(source, "store", None)
            if store is None or not hasattr(source, "encode"):
                raise TypeError(f"init='mix' takes the first images of every class in dataset order, which needs a "
                                f"data module with a loaded store (RealDataModule); got {type(source).__name__}")
            indices = [store.indices_by_class[c][:n] for c in range(self.num_classes)]
            short = [c for c, idx in enumerate(indices) if idx.numel() < n]
            if short:
                raise ValueError(f"init='mix' needs {n} train images per class (ipc * factor**2); classes {short} "
                                 "have fewer")
            self.init_indices = [int(i) for idx in indices for i in idx]
            images = [source.encode(store.images[idx]) for idx in indices]
        else:
            images = [source.real_images(c, n, generator) for c in range(self.num_classes)]
        grids = [mix_init(x, self.ipc, self.synthetic.factor) for x in images]
        self.synthetic.fill_(torch.cat(grids).to(self.synthetic.images))

    # ------------------------------------------------------------------ the iteration
    def on_fit_start(self) -> None:
        self.helpers.on(self.device)

    def _start_network(self) -> None:
        """A fresh network and optimiser (every ``inner_loop`` iterations), or the checkpoint's on a resume."""
        net = self.helpers.on(self.device)["net"]
        pending, self._pending_net_state = self._pending_net_state, None
        if self.iteration % int(self.hparams["inner_loop"]) == 0:
            reinitialize_(net, self.generator)
            self.net_optimizer = self.net_recipe.optimizer(net.parameters())
            with torch.no_grad():
                self.synthetic.images.clamp_(0, 1)
            return
        if self.net_optimizer is None:
            self.net_optimizer = self.net_recipe.optimizer(net.parameters())
        if pending is not None:
            net.load_state_dict(pending["net"])
            self.net_optimizer.load_state_dict(pending["optimizer"])

    def distill_step(self, batch: tuple[Tensor, Tensor]) -> None:
        parts, extra, extra_labels = self.split_real(batch)
        self._start_network()
        net = self.helpers["net"]
        mean = torch.tensor(self.data_meta["mean"], device=parts.device)  # once per iteration, on the device
        std = torch.tensor(self.data_meta["std"], device=parts.device)
        real = normalize(parts[0], mean, std)  # (K, k, C, H, W)
        size = tuple(real.shape[-2:])
        params = [self.match_augment.sample(1, self.generator, image_size=size) for _ in range(self.num_classes)]
        real = torch.stack([self.match_augment.apply(real[c], params[c]) for c in range(self.num_classes)])
        classes = torch.arange(self.num_classes, device=real.device)
        g_real = class_gradients(net, real, classes, self.matched, batched=self.batched) if self.batched else None
        for c in range(self.num_classes):
            syn, labels = self.synthetic.decode_class(c)
            max_syn = int(self.hparams["batch_syn_max"])
            if syn.shape[0] > max_syn:
                keep = torch.randperm(syn.shape[0], generator=self.generator)[:max_syn].to(syn.device)
                syn, labels = syn[keep], labels[keep]
            augmented = self.match_augment.apply(normalize(syn, mean, std), params[c])
            g_real_c = ([g[c : c + 1] for g in g_real] if g_real is not None
                        else class_gradients(net, real[c : c + 1], classes[c : c + 1], self.matched))
            g_syn = class_gradients(net, augmented[None], classes[c : c + 1], self.matched, create_graph=True)
            loss = gradient_distances(g_syn, g_real_c, self.metric)[0]
            self.image_step(loss, self.class_views(net, syn, labels, augmented, real[c], (mean, std)))
        if extra.shape[0]:
            assert self.net_optimizer is not None
            # DDP: every rank trains the same network on its own real images, gradients averaged at each step
            fit_classifier(net, normalize(extra, mean, std), extra_labels, self.net_recipe, self.generator,
                           optimizer=self.net_optimizer, after_backward=average_gradients)

    def class_views(self, net: torch.nn.Module, syn: Tensor, labels: Tensor, augmented: Tensor, real: Tensor,
                    stats: tuple[Tensor, Tensor]) -> Views:
        """The views of one class step: its decoded images, their augmentation (back in pixels with ``stats``, the
        data's (mean, std) on the device), feature maps."""
        views = Views(synthetic=syn, labels=labels)
        if self.needs_view(VIEW_AUGMENTED):
            mean, std = stats
            views.augmented = augmented * std.view(-1, 1, 1) + mean.view(-1, 1, 1)  # back to pixels
        if self.needs_view(VIEW_FEATURE_MAPS):
            with torch.no_grad():
                views.real_feature_maps = net.feature_map(real)  # type: ignore[operator]
            views.syn_feature_maps = net.feature_map(augmented)  # type: ignore[operator]
            views.real_labels = labels.new_full((real.shape[0],), int(labels[0]))
        return views

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.net_optimizer is not None:
            checkpoint["lightning_dd"]["idc_network"] = {"net": self.helpers.state_dict()["net"],
                                                         "optimizer": self.net_optimizer.state_dict()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._pending_net_state = checkpoint.get("lightning_dd", {}).get("idc_network")


def mix_init(images: Tensor, ipc: int, factor: int) -> Tensor:
    """IDC's ``init='mix'``: ``ipc * factor**2`` images of one class into ``ipc`` grids of ``factor x factor``.

    Block ``k = i * factor + j`` (row ``i``, column ``j``) of stored image ``m`` is ``images[k * ipc + m]``,
    downscaled with nearest interpolation; with ``H % factor = r``, the first ``r`` block rows (columns) are one
    pixel taller (wider), as the reference's ``Synthesizer.init``.

    Args:
        images: ``(ipc * factor**2, C, H, W)``.

    Returns:
        ``(ipc, C, H, W)``.
    """
    n, c, h, w = images.shape
    if n != ipc * factor**2:
        raise ValueError(f"mix_init needs ipc * factor**2 = {ipc * factor**2} images, got {n}")
    heights = [h // factor + (1 if i < h % factor else 0) for i in range(factor)]
    widths = [w // factor + (1 if j < w % factor else 0) for j in range(factor)]
    out = images.new_empty(ipc, c, h, w)
    top = 0
    for i, bh in enumerate(heights):
        left = 0
        for j, bw in enumerate(widths):
            k = i * factor + j
            out[:, :, top : top + bh, left : left + bw] = F.interpolate(images[k * ipc : (k + 1) * ipc], size=(bh, bw))
            left += bw
        top += bh
    return out
