"""One spec per registered dataset (``<name>.py``), collected in :data:`DATASETS` in registry order.

Adding a dataset is one file: a :class:`~lightning_dd.data.datasets.base.DatasetSpec` subclass (usually a
:class:`~lightning_dd.data.datasets.base.FileDatasetSpec`) with its info, layouts, reader and download, plus its
entry here.
"""

from lightning_dd.data.datasets.base import DatasetSpec, FileDatasetSpec, Lookup, Split
from lightning_dd.data.datasets.cifar10 import Cifar10Spec
from lightning_dd.data.datasets.cifar100 import Cifar100Spec
from lightning_dd.data.datasets.digits import DigitsSpec
from lightning_dd.data.datasets.fashion_mnist import FashionMnistSpec
from lightning_dd.data.datasets.image_folder import ImageFolderSpec
from lightning_dd.data.datasets.mnist import MnistSpec
from lightning_dd.data.datasets.svhn import SvhnSpec
from lightning_dd.data.datasets.tiny_imagenet import TinyImageNetSpec

__all__ = ["DATASETS", "DatasetSpec", "FileDatasetSpec", "Lookup", "Split"]

#: Every registered dataset by name, in the order of ``DATASET_NAMES``.
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DigitsSpec(),
        MnistSpec(),
        FashionMnistSpec(),
        SvhnSpec(),
        Cifar10Spec(),
        Cifar100Spec(),
        TinyImageNetSpec(),
        ImageFolderSpec(),
    )
}
