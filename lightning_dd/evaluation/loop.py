"""A plain-PyTorch student loop (no Trainer): used during distillation by the evaluator callback.

Same protocol as :class:`~lightning_dd.evaluation.student.StudentClassifier` (see ``protocol.py``); every random draw
(network init, shuffling, augmentation) comes from a generator derived from the given seed keys, and the global RNG
is never touched, so evaluating inside a run does not change the run's result.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lightning_dd.artifact import DistilledSet
from lightning_dd.evaluation.protocol import StudentRecipe
from lightning_dd.networks import create_network
from lightning_dd.seeding import STREAM_EVAL, make_generator
from lightning_dd.training import fit_classifier


def build_student(network: str, distilled: DistilledSet, generator: torch.Generator) -> nn.Module:
    """A zoo network for the artifact's shape and classes, initialised from ``generator``."""
    c, h, w = distilled.image_shape
    return create_network(network, c, distilled.num_classes, (h, w), generator=generator)


@torch.no_grad()
def accuracy(net: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1024,
             autocast_dtype: torch.dtype | None = None) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of ``net`` on normalised ``images`` ``(N, C, H, W)``."""
    device = next(net.parameters()).device
    net.eval()
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device, non_blocking=True)
        y = labels[start : start + batch_size].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            pred = net(x).argmax(dim=1)
        correct += int((pred == y).sum())
    return correct / images.shape[0]


def train_student(
    distilled: DistilledSet,
    test_images: Tensor,
    test_labels: Tensor,
    network: str = "convnet",
    recipe: StudentRecipe | None = None,
    seed_keys: Sequence[int] = (0,),
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> float:
    """Train one fresh student on ``distilled`` and return its test accuracy (fraction).

    The network is initialised from the student's generator, then trained by
    :func:`~lightning_dd.training.fit_classifier` with the same generator (shuffling, augmentation) under the
    protocol's recipe: SGD momentum 0.9, weight decay 5e-4, lr x0.1 from epoch ``epochs // 2``, per-sample DSA.

    Args:
        distilled: the synthetic set (normalised images).
        test_images: normalised real test images ``(N, C, H, W)`` (any device; moved in batches).
        test_labels: int64 ``(N,)``.
        network: zoo name of the student.
        recipe: the protocol (default :class:`StudentRecipe` with the artifact's DSA strategy, 1000 epochs).
        seed_keys: integers identifying this student (run seed, iteration, student index, ...).
        device: where to train.
        autocast_dtype: ``torch.bfloat16`` / ``torch.float16`` to train under autocast (as the trainer precision).
    """
    recipe = recipe or StudentRecipe(dsa_strategy=distilled.dsa_strategy)
    device = torch.device(device)
    generator = make_generator(*seed_keys, STREAM_EVAL)
    net = build_student(network, distilled, generator).to(device)
    soft = None if distilled.soft_labels is None else distilled.soft_labels.to(device)
    lr = distilled.lr if (recipe.use_learned_lr and distilled.lr is not None) else recipe.lr
    fit_classifier(net, distilled.images.to(device), distilled.labels.to(device), recipe.train_recipe(lr=lr),
                   generator, soft_labels=soft, device=device, autocast_dtype=autocast_dtype)
    return accuracy(net, test_images, test_labels, autocast_dtype=autocast_dtype)
