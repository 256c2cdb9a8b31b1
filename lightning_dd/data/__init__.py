"""Datasets for distillation: registry of shapes/statistics, on-disk readers, class-balanced sampling, DataModules."""

from lightning_dd.data.distilled import DistilledDataModule
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

__all__ = [
    "DATASET_NAMES",
    "ClassBalancedBatchSampler",
    "ClassIndexedImages",
    "DatasetInfo",
    "DistilledDataModule",
    "LabeledImages",
    "RealDataModule",
    "dataset_info",
    "load_split",
    "normalize",
]
