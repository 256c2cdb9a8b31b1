"""``RealDataModule``: the real train split sampled class-balanced per iteration, and the test split for evaluation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader

from lightning_dd.augment.zca import ZCA
from lightning_dd.data.loaders import (
    Batch,
    StreamBatchSampler,
    TensorPairDataset,
    TrainDataLoader,
    passthrough_collate,
)
from lightning_dd.data.protocol import RealDemand
from lightning_dd.data.registry import (
    EMBEDDED_DATASETS,
    DatasetInfo,
    DatasetName,
    LabeledImages,
    check_dataset_name,
    dataset_info,
    load_split,
    normalize,
    require_root,
)
from lightning_dd.data.registry import download as download_dataset
from lightning_dd.data.spaces import encode
from lightning_dd.data.store import ClassIndexedImages
from lightning_dd.synthetic import IMAGE_SPACES

__all__ = ["RealDataModule"]


class RealDataModule(pl.LightningDataModule):
    """Real images for distillation: class-balanced train batches and the test split.

    Train batches are ``(images, labels)``: ``images`` ``uint8 (num_classes * per_class, C, H, W)`` class-sorted
    (``per_class`` images of class 0 first), ``labels`` ``int64 (num_classes * per_class,)``; one epoch is
    ``iterations_per_epoch`` batches of a :class:`ClassBalancedBatchSampler` (seeded per seed, epoch, rank, batch).
    Test batches are the test split in order; :meth:`on_after_batch_transfer` encodes images on the device.

    Use ``Trainer(use_distributed_sampler=False)``: the batch sampler is already rank-aware.
    Exact resume: the train batches form one stream (stream batch ``g`` = sampler batch ``g % iterations_per_epoch``
    of sampler epoch ``g // iterations_per_epoch``); :meth:`state_dict` records how many reached ``training_step``
    and after :meth:`load_state_dict` the loader continues there, so a run resumed from any checkpoint (mid-epoch,
    or a finished run extended with a larger ``max_steps``) sees the batches of an uninterrupted one. Outside a
    Trainer nothing is counted: each iteration of the loader yields ``iterations_per_epoch`` batches.

    I/O is explicit. The constructor reads the dataset's description (:meth:`describe`: no I/O for the fixed
    datasets, ``wnids.txt`` for ``tiny_imagenet``, a scan of ``root/train`` for ``image_folder``), so :attr:`info`,
    :attr:`num_classes`, ... are in memory at once (the CLI links them to the model); the splits are read once by
    :meth:`load_train` / :meth:`test_split` (both called by :meth:`setup`). Your own tensors or torch ``Dataset``:
    :class:`~lightning_dd.data.tensors.TensorDataModule` (and its ``from_dataset``).

    Args:
        dataset: registered dataset name (see :data:`~lightning_dd.data.registry.DATASET_NAMES`).
        root: dataset folder (not needed by ``digits``).
        batch_real: real images per class per batch (capped at the smallest class size, with a warning).
        download: let torchvision download the dataset into ``root`` in :meth:`prepare_data`.
        seed: base seed of the train batch sampler.
        iterations_per_epoch: train batches per epoch.
        test_batch_size: batch size of the validation/test loaders.
        num_workers: DataLoader worker processes.
        space: the space of the batches and :meth:`real_images`: ``"normalized"`` (``(x/255 - mean) / std``),
            ``"pixels"`` (``x/255``, IDC) or ``"zca"`` (whitening fitted on the train split in :meth:`setup`, MTT).
        zca_eps: the ZCA regularisation added to the covariance eigenvalues (MTT / kornia: 0.1).

    Raises:
        ValueError: unknown ``dataset``, missing ``root``, or an integer argument out of range (each named).
        FileNotFoundError: ``tiny_imagenet`` / ``image_folder`` files not found under ``root`` (from :meth:`describe`).
    """

    def __init__(
        self,
        dataset: DatasetName = "digits",
        root: str | None = None,
        batch_real: int = 256,
        download: bool = False,
        seed: int = 0,
        iterations_per_epoch: int = 100,
        test_batch_size: int = 256,
        num_workers: int = 0,
        space: Literal["normalized", "pixels", "zca"] = "normalized",
        zca_eps: float = 0.1,
    ) -> None:
        super().__init__()
        self.check_source(dataset, root)
        if space not in IMAGE_SPACES:
            raise ValueError(f"space must be one of {IMAGE_SPACES}, got {space!r}")
        if not zca_eps > 0:
            raise ValueError(f"zca_eps must be > 0, got {zca_eps!r}")
        for arg, value, low in (
            ("batch_real", batch_real, 1),
            ("iterations_per_epoch", iterations_per_epoch, 1),
            ("test_batch_size", test_batch_size, 1),
            ("num_workers", num_workers, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{arg} must be an integer >= {low}, got {value!r}")
        self.save_hyperparameters(ignore=list(self._not_hyperparameters))
        self.dataset = dataset
        self.root = None if root is None else str(Path(root).expanduser())
        self.batch_real = batch_real
        self.download = download
        self.seed = seed
        self.iterations_per_epoch = iterations_per_epoch
        self.test_batch_size = test_batch_size
        self.num_workers = num_workers
        self.space = space
        self.zca_eps = float(zca_eps)
        self.zca: ZCA | None = None
        self._store: ClassIndexedImages | None = None
        self._test: LabeledImages | None = None
        self._per_class: int | None = None
        self._cap_warning = ""  # batch_real capped by the smallest class: said once, when per_class is first read
        self._norm: dict[torch.device, tuple[Tensor, Tensor]] = {}
        # resume bookkeeping: train batches the training loop has consumed (the stream position, checkpointed)
        self._consumed = 0
        self.demand = RealDemand()  # what one batch holds; the method says so in its setup (set_real_demand)
        self._info: DatasetInfo = self.describe()

    #: constructor arguments that are data, not settings (subclasses holding tensors list them)
    _not_hyperparameters: tuple[str, ...] = ()

    # ------------------------------------------------------------------------------------------------ the source
    # Your own data source: subclass and override these three (``check_source``, ``describe``, ``read_split``), as
    # TensorDataModule does; the command line takes it as ``--data.class_path your.module.YourData``.

    def check_source(self, dataset: str, root: str | None) -> None:
        """Refuse an unknown dataset, or a missing ``root`` where the files are needed (at construction)."""
        check_dataset_name(dataset)
        if dataset not in EMBEDDED_DATASETS:
            require_root(dataset, root)

    def read_split(self, train: bool) -> LabeledImages:
        """Read one split into memory (``uint8`` images, ``int64`` labels)."""
        return load_split(self.dataset, self.root, train=train, download=self.download)

    # ------------------------------------------------------------------------------------------------ description

    def describe(self) -> DatasetInfo:
        """Read the dataset's :class:`DatasetInfo` from the registry (and the files, for file-described datasets).

        No I/O for the fixed datasets. ``tiny_imagenet``: class names from ``wnids.txt`` (or the ``train/`` folders
        of an image-folder copy), downloading the dataset first when ``download=True`` and it is missing (the CLI
        reads ``num_classes`` before ``prepare_data`` runs). ``image_folder``: a scan of ``root/train`` (channels,
        size and statistics; cached on disk). Called by the constructor, whose result :attr:`info` returns.

        Raises:
            FileNotFoundError: ``tiny_imagenet`` / ``image_folder`` files not found under ``root``.
        """
        if self.download and self.dataset == "tiny_imagenet" and self.root is not None:
            download_dataset(self.dataset, self.root)
        return dataset_info(self.dataset, self.root)

    @property
    def info(self) -> DatasetInfo:
        """:class:`DatasetInfo` of the dataset, read by the constructor (:meth:`describe`); in memory, no I/O."""
        return self._info

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return self.info.image_shape

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @property
    def mean(self) -> tuple[float, ...]:
        return self.info.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.info.std

    # ------------------------------------------------------------------------------------------------ data

    def prepare_data(self) -> None:
        """Download the dataset into ``root`` if ``download=True`` (nothing else; runs on one process per node)."""
        if self.download and self.root is not None:
            download_dataset(self.dataset, self.root)

    def setup(self, stage: str | None = None) -> None:
        """Load the train split (:meth:`load_train`, for ``fit`` / ``None``) and the test split (all stages); once."""
        if stage in (None, "fit"):
            self.load_train()
        if self.space == "zca":
            self.fit_zca()
        self.test_split()

    def fit_zca(self) -> ZCA:
        """Fit the ZCA whitening on the train split (first call only; deterministic) and return it."""
        if self.zca is None:
            self.zca = ZCA.fit(self.load_train().images, eps=self.zca_eps)
        return self.zca

    def zca_state(self) -> dict[str, Tensor] | None:
        """The fitted ZCA's state (recorded in checkpoints and artifacts), ``None`` outside the ``zca`` space."""
        return None if self.zca is None else self.zca.state_dict()

    def load_train(self) -> ClassIndexedImages:
        """Read the train split into :attr:`store` (first call only) and return it.

        Also fixes :attr:`per_class` = ``min(batch_real, smallest class size)`` (which warns, when first read, if it
        caps ``batch_real``: commands that never draw train batches, such as ``pretrain``, are not warned).

        Raises:
            ValueError: a class has no train images, or the images do not have the dataset's ``(C, H, W)``.
            FileNotFoundError: the split is not found under ``root`` (the message lists the layouts searched).
        """
        if self._store is None:
            split = self.read_split(train=True)
            self._check_split(split, "train")
            store = ClassIndexedImages(split.images, split.labels, self.num_classes)
            sizes = store.class_sizes()
            empty = [self.class_names[c] for c, n in enumerate(sizes) if n == 0]
            if empty:
                raise ValueError(f"{self.dataset}: classes without train images: {empty}")
            smallest = min(sizes)
            if self.batch_real > smallest:
                self._cap_warning = (
                    f"batch_real={self.batch_real} exceeds the smallest class of {self.dataset!r} "
                    f"({smallest} images, class {self.class_names[sizes.index(smallest)]!r}); using {smallest} real "
                    "images per class per batch."
                )
            self._per_class = min(self.batch_real, smallest)
            self._store = store
        return self._store

    def _not_loaded(self, name: str) -> RuntimeError:
        return RuntimeError(
            f"RealDataModule.{name}: the {self.dataset!r} train split is not loaded yet; call load_train() (or "
            "setup('fit')) first"
        )

    @property
    def store(self) -> ClassIndexedImages:
        """The train split as :class:`ClassIndexedImages`, as loaded by :meth:`load_train` (``RuntimeError`` before)."""
        if self._store is None:
            raise self._not_loaded("store")
        return self._store

    @property
    def per_class(self) -> int:
        """Real images per class per train batch: ``min(batch_real, smallest class size)``; after :meth:`load_train`."""
        if self._per_class is None:
            raise self._not_loaded("per_class")
        if self._cap_warning:
            rank_zero_warn(self._cap_warning)
            self._cap_warning = ""
        return self._per_class

    def test_split(self) -> LabeledImages:
        """The test split (``uint8 (N, C, H, W)`` images, ``int64 (N,)`` labels), loaded on first use."""
        if self._test is None:
            split = self.read_split(train=False)
            self._check_split(split, "test")
            self._test = split
        return self._test

    def _check_split(self, split: LabeledImages, which: str) -> None:
        if tuple(split.images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{self.dataset} {which} images are {tuple(split.images.shape[1:])}, expected {self.image_shape}"
            )

    # ------------------------------------------------------------------------------------------------ loaders

    def set_real_demand(self, demand: RealDemand) -> None:
        """What one train batch holds (the method's :class:`RealDemand`; set before the train loader is built)."""
        self.demand = demand

    def train_dataloader(self) -> DataLoader:
        """Batches of :attr:`demand`: ``class_batches`` class-balanced parts (``uint8 (num_classes * per_class, C, H,
        W)`` class-sorted each), then ``extra_images`` uniformly random images; ``int64`` labels."""
        store = self.load_train()
        rank = world_size = None
        if self.trainer is not None:
            rank, world_size = self.trainer.global_rank, self.trainer.world_size
        # a demand without class-balanced parts (MTT) reads no per-class batch: no batch_real cap to warn about
        per_class = self.per_class if self.demand.class_batches else max(1, self._per_class or 1)
        sampler = StreamBatchSampler(
            store.indices_by_class,
            per_class,
            self.iterations_per_epoch,
            seed=self.seed,
            rank=rank,
            world_size=world_size,
            position=lambda: self._consumed,
            demand=self.demand,
        )
        return TrainDataLoader(
            TensorPairDataset(store.images, store.labels),
            batch_sampler=sampler,
            collate_fn=passthrough_collate,
            num_workers=self.num_workers,
        )

    def test_dataloader(self) -> DataLoader:
        """The test split in order, ``test_batch_size`` per batch, ``(uint8 images, int64 labels)``.

        (No ``val_dataloader``: distillation has no validation loop; in-run evaluation is the
        ``DistilledSetEvaluator`` callback.)
        """
        split = self.test_split()
        return DataLoader(
            TensorPairDataset(split.images, split.labels),
            batch_size=self.test_batch_size,
            shuffle=False,
            collate_fn=passthrough_collate,
            num_workers=self.num_workers,
        )

    # ------------------------------------------------------------------------------------------------ on device

    def normalize(self, images: Tensor) -> Tensor:
        """``uint8`` (or ``[0, 1]`` float) ``(..., C, H, W)`` -> normalized ``float32`` on the same device."""
        device = images.device
        if device not in self._norm:
            self._norm[device] = (
                torch.tensor(self.mean, dtype=torch.float32, device=device),
                torch.tensor(self.std, dtype=torch.float32, device=device),
            )
        mean, std = self._norm[device]
        return normalize(images, mean, std)

    def encode(self, images: Tensor) -> Tensor:
        """``uint8`` (or ``[0, 1]`` float) images -> ``float32`` in :attr:`space`, on their device."""
        if self.space == "normalized":
            return self.normalize(images)
        zca = self.fit_zca() if self.space == "zca" else None
        return encode(images, self.space, self.mean, self.std, zca)

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Encode the batch's images into :attr:`space` on the device; count training batches for exact resume."""
        trainer = self.trainer
        if trainer is not None and trainer.training:
            self._consumed += 1
        images, labels = batch
        return self.encode(images), labels

    def real_images(self, class_index: int, n: int, generator: torch.Generator) -> Tensor:
        """``n`` distinct random train images of one class, ``float32 (n, C, H, W)`` in :attr:`space`, on the CPU.

        Reads the train split first if it is not loaded yet (:meth:`load_train`).
        """
        return self.encode(self.load_train().sample(class_index, n, generator))

    # ------------------------------------------------------------------------------------------------ state

    #: arguments that fix the stream of real batches (and the images' meaning): a resume must not change them
    RESUME_FIXED = ("dataset", "batch_real", "seed", "iterations_per_epoch", "space", "zca_eps", "demand")

    def state_dict(self) -> dict[str, Any]:
        """``{"position": n, "config": {...}[, "zca": state]}``: the training loop consumed ``n`` train batches of the
        stream; the arguments of :attr:`RESUME_FIXED`; the ZCA state in the ``zca`` space (a resume reuses it)."""
        config = {name: getattr(self, name) for name in self.RESUME_FIXED}
        config["demand"] = dataclasses.asdict(self.demand)
        state: dict[str, Any] = {"position": self._consumed, "config": config}
        if self.zca is not None:
            state["zca"] = self.zca.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the stream position (the next train batch is stream batch ``position``) and the ZCA state.

        Raises:
            ValueError: the checkpoint was written with other values of :attr:`RESUME_FIXED` (names both).
        """
        saved = dict(state_dict.get("config", {}))
        if isinstance(saved.get("demand"), dict):
            saved["demand"] = RealDemand(**saved["demand"])
        conflicts = [f"data.{name}: checkpoint {saved[name]!r}, this run {getattr(self, name)!r}"
                     for name in self.RESUME_FIXED if name in saved and saved[name] != getattr(self, name)]
        if conflicts:
            raise ValueError("the checkpoint's real-data stream differs from this run's; a resume may change only the "
                             "budget and the output paths: " + "; ".join(conflicts))
        if "position" in state_dict:
            self._consumed = int(state_dict["position"])
        else:  # written before the stream position existed: epoch and batches consumed in it
            self._consumed = (int(state_dict.get("epoch", 0)) * self.iterations_per_epoch
                              + int(state_dict.get("batches_consumed", 0)))
        if state_dict.get("zca") is not None:
            self.zca = ZCA.from_state(state_dict["zca"])
