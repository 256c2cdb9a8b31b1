"""Tiny real proxy pools on the embedded digits dataset, trained with the library's own ``pretrain_proxies``
(default: 2 ConvNet proxies x 2 epochs on 30 images per class, about a second on a CPU)."""

from __future__ import annotations

import torch

from lightning_dd.data import RealDataModule
from lightning_dd.pretrained import ProxyPool, pretrain_proxies


def digits_pool(image_size: int = 8, per_class: int = 30, num_models: int = 2, epochs: int = 2) -> ProxyPool:
    """ConvNet proxies trained on a seeded subset of digits (upsampled to ``image_size`` when it is not 8)."""
    data = RealDataModule("digits", batch_real=16)
    data.prepare_data()
    store = data.load_train()
    generator = torch.Generator().manual_seed(0)
    indices = torch.cat(
        [idx[torch.randperm(idx.numel(), generator=generator)[:per_class]] for idx in store.indices_by_class]
    )
    images = data.normalize(store.images[indices])
    if image_size != images.shape[-1]:
        images = torch.nn.functional.interpolate(images, size=(image_size, image_size), mode="nearest")
    return pretrain_proxies(
        images,
        store.labels[indices],
        dataset="digits",
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
        num_models=num_models,
        epochs=epochs,
        recipe="iid",  # weight decay 5e-4: the pools these tests were calibrated on
        network="convnet",
        batch_size=64,
        seed=0,
        log=lambda line: None,
    )
