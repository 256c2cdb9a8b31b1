"""A minimal distillation method on the lightning_dd base: DM with ONE frozen random network for the whole run.

Everything else (the synthetic set, initialisation from real images, DSA, the image optimiser, regularizers, logging,
checkpoints, DDP, export) comes from the base. Run it with
``lightning-dd fit --model example_method.FixedNetDM --data.dataset digits`` (with this folder on ``PYTHONPATH``).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from lightning_dd.losses import distribution_matching
from lightning_dd.methods import MatchingModule, Views
from lightning_dd.networks import HelperNetworks, create_network
from lightning_dd.seeding import STREAM_TRAIN, make_generator


class FixedNetDM(MatchingModule):
    """Match per-class mean embeddings of one frozen random network (DM re-draws it every iteration).

    Args:
        network: embedding network (a ``lightning_dd.networks`` zoo name).
        **kwargs: the ``DistillationModule`` arguments (``ipc``, ``optimizer``, ``seed``, ``regularizers``, ...).
    """

    method_name = "FixedNetDM"

    def __init__(self, network: str = "convnet", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        c, h, w = self.synthetic.image_shape
        generator = make_generator(self.seed, STREAM_TRAIN, 1)  # seeded: no global RNG
        net = create_network(network, c, self.num_classes, (h, w), generator=generator)
        self.helpers = HelperNetworks(embedder=net.requires_grad_(False))  # not a submodule: not optimised/synced

    def match(self, real: Tensor) -> tuple[Tensor, Views]:
        """``real``: ``(K, k, C, H, W)``; returns the loss of one image step and the views for regularizers."""
        net = self.helpers.on(real.device)["embedder"]
        size = tuple(real.shape[-2:])
        params = None if self.dsa.is_identity else self.dsa.sample(self.num_classes, self.generator, image_size=size)
        out = distribution_matching(net, real, self.synthetic.by_class(), self.dsa, params,
                                    classes_per_forward=self.num_classes, keep_augmented=True)
        return out.loss, Views(augmented=out.augmented)
