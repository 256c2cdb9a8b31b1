"""Datasets for distillation: one spec per dataset, the registry over them, class-balanced sampling, DataModules.

Layers (imports point down only): ``types`` <- ``cache`` / ``decode`` / ``image_folder`` <- ``datasets/*`` <-
``registry`` <- ``real`` / ``distilled``; ``protocol`` (what methods need from the data side) builds on ``types``.
"""

from lightning_dd.data.distilled import DistilledDataModule
from lightning_dd.data.protocol import RealDataSource, random_real_subset
from lightning_dd.data.real import RealDataModule
from lightning_dd.data.registry import (
    DATASET_NAMES,
    DatasetInfo,
    LabeledImages,
    dataset_info,
    load_split,
    normalize,
)
from lightning_dd.data.samplers import ClassBalancedBatchSampler
from lightning_dd.data.store import ClassIndexedImages
from lightning_dd.data.tensors import TensorDataModule

__all__ = [
    "DATASET_NAMES",
    "ClassBalancedBatchSampler",
    "ClassIndexedImages",
    "DatasetInfo",
    "DistilledDataModule",
    "LabeledImages",
    "RealDataModule",
    "RealDataSource",
    "TensorDataModule",
    "dataset_info",
    "load_split",
    "normalize",
    "random_real_subset",
]
