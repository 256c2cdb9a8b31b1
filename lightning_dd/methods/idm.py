"""IDM: Improved Distribution Matching (Zhao et al., CVPR 2023; ``uitrbn/IDM: IDM_cifar10.py``, ``command.txt``).

Distribution matching against a queue of networks that keep training on real data, with partition-and-expansion
and a class-aware cross-entropy term. One iteration (the reference's ``it``, ``outer_loop = 1``)::

    it > 0 and it % accuracy_reset_interval == 0: reset every queue network's accuracy meter (the reference resets
        them at each evaluation, every eval_interval iterations)
    it % net_generate_interval == 0: push a fresh random network (FIFO, at most net_num; the queue starts with 3)
    for each of train_net_num random queue networks (eval mode):
        one DSA draw per class, shared by the class's real and synthetic images (siamese)
        for every class c:                                         # one image step per class
            x_s, y_s = the 4*ipc images of class c's partitioned stored images (SyntheticSet.decode_class)
            loss_c = || mean embed(A_c(x_r)) - mean embed(A_c(x_s)) ||^2
                     + ce_weight * acc_percent(net) * CE(net(A_c(x_s)), y_s)
    train fetch_net_num random queue networks model_train_steps SGD steps each on real batches of batch_train
        (no augmentation); their accuracy meters count those batches' predictions

``embed`` is the flattened last feature map: the reference's ``embed_channel_avg(x, last=embed_last)`` with every
shipped ``embed_last`` (1000, 100) beyond the feature layers' count, i.e. all of them. ``acc_percent`` is the running
training accuracy in percent, so the effective CE weight is e.g. ``0.5 * 60 = 30`` (``methods.md`` §2.4, §7.8).

``batched_real`` embeds every class's real batch up front (:func:`~lightning_dd.losses.real_class_means`; the
network does not change inside the class loop), equal to the per-class loop up to float rounding.

Known differences from the reference: the DSA, the networks and every draw come from the run's generator (the
reference seeds them from the clock); the queue's real batches are ``fetch_net_num * model_train_steps *
batch_train`` distinct images per iteration (the reference draws each step's batch independently, so batches of one
iteration may overlap). The IPC-1 filtering of real images without ``--aug`` is not implemented (no shipped command
uses it): ``partition=False`` is plain per-class DM against the queue.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from lightning_dd.data.protocol import RealDataSource, RealDemand
from lightning_dd.distributed import average_gradients, sum_across_ranks
from lightning_dd.losses import mean_embedding_distance, real_class_means
from lightning_dd.methods.base import DistillationModule, Views
from lightning_dd.methods.matching import RealBatches, check_int, matching_network
from lightning_dd.networks import NetworkName, NetworkQueue, has_batchnorm
from lightning_dd.regularizers.base import VIEW_FEATURE_MAPS
from lightning_dd.seeding import STREAM_INIT, make_generator
from lightning_dd.synthetic import FactorizedSyntheticSet, SyntheticSet, encode_partition
from lightning_dd.training import TrainRecipe, fit_classifier

__all__ = ["IDM"]


class IDM(RealBatches, DistillationModule):
    """IDM with the model queue, partition-and-expansion and the accuracy-weighted cross-entropy term.

    Args:
        network: the queue's architecture (reference ConvNet-3, instance norm; BatchNorm networks are refused).
        partition: store each image as a 2x2 grid expanded to 4 training images (the reference's ``--aug``).
        net_num: the queue's capacity (100; 50 for the ImageNet subset).
        initial_nets: networks in the queue before the first iteration (3).
        net_generate_interval: push a fresh network every this many iterations, from iteration 0 (30; 5 at IPC 1).
        train_net_num: queue networks matched against per iteration (1); each gives every class one image step.
        fetch_net_num: queue networks trained per iteration (2).
        model_train_steps: SGD steps per trained network and iteration (10; 50 for some cells).
        batch_train: real images per such step (256: the reference's ``--trained_bs``, which its queue training
            reads; its ``--batch_train`` flag is parsed but unused there).
        lr_net, momentum_net, weight_decay_net: the queue networks' SGD (0.01, 0.9, 5e-4: ``--net_decay``).
        ce_weight: the cross-entropy weight per accuracy percent (0.5 / 0.1 / 0.8 by cell; 0 disables the term).
        accuracy_reset_interval: reset the accuracy meters every this many iterations (the reference's
            ``eval_interval``: 100, 500 or 1000 by cell).
        batched_real: embed all classes' real images before the class loop (``True``), per class (``False``), or
            ``"auto"`` (batched; equal results either way for networks without BatchNorm).
        real_images_per_forward: forward size for the real images (``None``: all at once); ``"auto"``: 16 on the
            CPU (see :class:`~lightning_dd.methods.dm.DM`), all at once elsewhere.
        optimizer: the image optimiser (reference SGD lr 0.2, momentum 0.5).
        **kwargs: the remaining arguments of :class:`~lightning_dd.methods.base.DistillationModule`.
    """

    method_name = "IDM"

    def __init__(self, network: NetworkName = "convnet", partition: bool = True, net_num: int = 100,
                 initial_nets: int = 3, net_generate_interval: int = 30, train_net_num: int = 1,
                 fetch_net_num: int = 2, model_train_steps: int = 10, batch_train: int = 256, lr_net: float = 0.01,
                 momentum_net: float = 0.9, weight_decay_net: float = 5e-4, ce_weight: float = 0.5,
                 accuracy_reset_interval: int = 100, batched_real: bool | Literal["auto"] = "auto",
                 real_images_per_forward: int | Literal["auto"] | None = "auto",
                 optimizer: OptimizerCallable = lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.5),
                 **kwargs: Any) -> None:
        for name, value, low in (("net_num", net_num, 1), ("initial_nets", initial_nets, 1),
                                 ("net_generate_interval", net_generate_interval, 1),
                                 ("train_net_num", train_net_num, 1), ("fetch_net_num", fetch_net_num, 0),
                                 ("model_train_steps", model_train_steps, 0), ("batch_train", batch_train, 1),
                                 ("accuracy_reset_interval", accuracy_reset_interval, 1)):
            check_int(name, value, low)
        if initial_nets > net_num:
            raise ValueError(f"initial_nets ({initial_nets}) must not exceed net_num ({net_num})")
        if isinstance(ce_weight, bool) or not isinstance(ce_weight, int | float) or ce_weight < 0:
            raise ValueError(f"ce_weight must be a number >= 0, got {ce_weight!r}")
        if batched_real not in (True, False, "auto"):
            raise ValueError(f"batched_real must be true, false or 'auto', got {batched_real!r}")
        if real_images_per_forward not in ("auto", None):
            check_int("real_images_per_forward", real_images_per_forward, 1, " or 'auto' / null")
        super().__init__(optimizer=optimizer, **kwargs)
        template = matching_network(self, network)
        if has_batchnorm(template):
            raise ValueError(f"IDM matches per class with networks in eval mode; {network!r} has BatchNorm, whose "
                             "running statistics the reference never uses here: use an instance-norm network such "
                             "as 'convnet'")
        self.net_recipe = TrainRecipe(epochs=1, lr=lr_net, momentum=momentum_net, weight_decay=weight_decay_net,
                                      batch_size=batch_train)
        self.queue = NetworkQueue(template, self.net_recipe.optimizer, net_num)
        self._pending_queue: dict[str, Any] | None = None
        self.real_per_forward: int | None = None  # resolved in configure_method

    # ------------------------------------------------------------------ configuration
    def configure_synthetic(self) -> SyntheticSet:
        hp = self.hparams
        if not hp["partition"]:
            return super().configure_synthetic()
        return FactorizedSyntheticSet(int(hp["num_classes"]), int(hp["ipc"]), tuple(hp["image_shape"]), factor=2,
                                      layout="partition", space=hp["space"])

    @property
    def image_steps_per_iteration(self) -> int:  # type: ignore[override]
        return int(self.hparams["train_net_num"]) * self.num_classes

    def real_demand(self) -> RealDemand:
        """One class-balanced part per matched network, then the queue networks' training images."""
        hp = self.hparams
        extra = int(hp["fetch_net_num"]) * int(hp["model_train_steps"]) * int(hp["batch_train"])
        return RealDemand(class_batches=int(hp["train_net_num"]), extra_images=extra)

    def initialize_images(self, source: RealDataSource) -> None:
        """``init="real"`` with the partition: per class, four independent draws of ``ipc`` real images, each
        downscaled into one quadrant (:func:`~lightning_dd.synthetic.encode_partition`, the reference order)."""
        if self.init_scheme != "real" or not self.hparams["partition"]:
            super().initialize_images(source)
            return
        generator = make_generator(self.seed, STREAM_INIT)
        grids = [encode_partition(torch.stack([source.real_images(c, self.ipc, generator) for _ in range(4)]))
                 for c in range(self.num_classes)]
        self.synthetic.fill_(torch.cat(grids).to(self.synthetic.images))

    def configure_method(self, data: RealDataSource) -> None:
        setting = self.hparams["real_images_per_forward"]
        device = self.trainer.strategy.root_device
        if setting == "auto":
            self.real_per_forward = 16 if device.type == "cpu" else None
        else:
            self.real_per_forward = None if setting is None else int(setting)

    def on_fit_start(self) -> None:
        self.queue.to(self.device)

    # ------------------------------------------------------------------ the iteration
    def _prepare_queue(self) -> None:
        pending, self._pending_queue = self._pending_queue, None
        if pending is not None:
            self.queue.load_state_dict(pending)
        elif len(self.queue) == 0:
            for _ in range(int(self.hparams["initial_nets"])):
                self.queue.push(self.generator)
        it = self.iteration
        if it > 0 and it % int(self.hparams["accuracy_reset_interval"]) == 0:
            self.queue.reset_meters()
        if it % int(self.hparams["net_generate_interval"]) == 0:
            self.queue.push(self.generator)

    def distill_step(self, batch: tuple[Tensor, Tensor]) -> None:
        parts, extra, extra_labels = self.split_real(batch)
        self._prepare_queue()
        hp = self.hparams
        batched = hp["batched_real"] in (True, "auto")
        size = tuple(parts.shape[-2:])
        for p, index in enumerate(self.queue.pick(int(hp["train_net_num"]), self.generator)):
            entry = self.queue[index]
            net = entry.net.eval()
            real = parts[p]
            params = None if self.dsa.is_identity else self.dsa.sample(self.num_classes, self.generator,
                                                                       image_size=size)
            weight = float(hp["ce_weight"]) * entry.accuracy_percent
            means = real_class_means(net, real, self.dsa, params, self.real_per_forward) if batched else None
            for c in range(self.num_classes):
                class_params = None if params is None else params[c : c + 1]
                mean_c = (means[c] if means is not None
                          else real_class_means(net, real[c : c + 1], self.dsa, class_params, self.real_per_forward)[0])
                syn, labels = self.synthetic.decode_class(c)
                augmented = syn if class_params is None else self.dsa.apply(syn, class_params)
                views = Views(synthetic=syn, labels=labels, augmented=augmented)
                if self.needs_view(VIEW_FEATURE_MAPS):
                    maps = net.feature_map(augmented)  # type: ignore[operator]
                    embedded = net.embed_from_map(maps)  # type: ignore[operator]
                    with torch.no_grad():
                        xr = real[c] if class_params is None else self.dsa.apply(real[c], class_params)
                        views.real_feature_maps = net.feature_map(xr)  # type: ignore[operator]
                    views.syn_feature_maps = maps
                    views.real_labels = labels.new_full((real.shape[1],), c)
                else:
                    embedded = net.embed(augmented)  # type: ignore[operator]
                loss = mean_embedding_distance(mean_c, embedded)
                if weight > 0:
                    loss = loss + weight * F.cross_entropy(net.classifier(embedded), labels)  # type: ignore[operator]
                self.image_step(loss, views)
            self.log("train/ce_weight", weight)  # the effective weight: ce_weight x the net's accuracy in percent
        self.log("train/queue_size", float(len(self.queue)))
        self._train_queue(extra, extra_labels)

    def _train_queue(self, images: Tensor, labels: Tensor) -> None:
        """``fetch_net_num`` random queue networks, ``model_train_steps`` SGD steps each on their share of the
        iteration's real images; the predictions feed their accuracy meters.

        DDP policy: every rank draws the same networks and DSA (the run's generator) and trains them on its own real
        images with the ranks' gradients averaged at every step, and the meters count all ranks' predictions, so the
        queue stays identical on every rank while N ranks train it on N times the images.
        """
        hp = self.hparams
        share = int(hp["model_train_steps"]) * int(hp["batch_train"])
        if share == 0:
            return
        for j, index in enumerate(self.queue.pick(int(hp["fetch_net_num"]), self.generator)):
            entry = self.queue[index]
            entry.net.train()
            x, y = images[j * share : (j + 1) * share], labels[j * share : (j + 1) * share]
            result = fit_classifier(entry.net, x, y, self.net_recipe, self.generator, optimizer=entry.optimizer,
                                    after_backward=average_gradients)
            counts = torch.tensor([round(result.train_accuracy * x.shape[0]), x.shape[0]], device=x.device)
            correct, seen = sum_across_ranks(counts).tolist()
            entry.record(int(correct), int(seen))

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["lightning_dd"]["idm_queue"] = self.queue.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._pending_queue = checkpoint.get("lightning_dd", {}).get("idm_queue")
