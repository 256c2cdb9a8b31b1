"""Shared fixtures of the evaluation tests: the digits test split and distilled sets drawn from its train split."""

from __future__ import annotations

import pytest
import torch

from lightning_dd.artifact import DistilledSet
from lightning_dd.data import RealDataModule
from lightning_dd.seeding import make_generator


@pytest.fixture(scope="session")
def digits() -> RealDataModule:
    return RealDataModule("digits", batch_real=1)


@pytest.fixture(scope="session")
def digits_test(digits: RealDataModule) -> tuple[torch.Tensor, torch.Tensor]:
    split = digits.test_split()
    return digits.normalize(split.images), split.labels


def random_subset(data: RealDataModule, ipc: int, seed: int = 0) -> DistilledSet:
    """``ipc`` random real train images per class of ``data`` as a :class:`DistilledSet` (the random baseline)."""
    generator = make_generator(seed)
    info = data.info
    images = torch.cat([data.real_images(c, ipc, generator) for c in range(info.num_classes)])
    return DistilledSet(
        images=images,
        labels=torch.arange(info.num_classes).repeat_interleave(ipc),
        dataset=info.name,
        class_names=info.class_names,
        mean=info.mean,
        std=info.std,
        method="random",
        ipc=ipc,
        seed=seed,
        dsa_strategy=info.dsa_strategy,
    )


@pytest.fixture(scope="session")
def digits_ipc10(digits: RealDataModule) -> DistilledSet:
    return random_subset(digits, ipc=10)
