"""MTT expert trajectories: networks trained on the real data, their flat parameters after init and every epoch.

The reference recipe (``GeorgeCazenavette/mtt-distillation: buffer.py``, :data:`EXPERT_RECIPE`): ConvNet-3, SGD
lr 0.01, no momentum, no weight decay, batch 256, per-batch DSA (align_corners ``True``, as MTT's DSA), no lr decay;
100 experts x 50 epochs, the parameters saved after init and after every epoch (51 snapshots per expert).

Storage: a buffer is a directory of shards, one :class:`ExpertBuffer` file per expert (``expert_00007.pt``), each a
:class:`~lightning_dd.pretrained.poolfile.PoolFile` whose header records the dataset, resolution, classes,
normalisation, image space (and the ZCA fingerprint in the ``zca`` space), network and recipe. Expert ``k`` is a
function of ``(seed, k)`` alone (``make_generator(seed, STREAM_EXPERT, k)`` initialises and trains it), so
processes given disjoint expert ids (``shard_index`` / ``num_shards``) build one buffer together, and a run that is
interrupted keeps its finished experts (every shard is written atomically) and resumes with the missing ones.
:func:`load_expert_buffer` reads every shard of a directory into one buffer (CPU), checking that they agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightning_dd.losses.trajectory import flat_parameters
from lightning_dd.networks import create_network
from lightning_dd.pretrained.poolfile import PoolFile
from lightning_dd.seeding import STREAM_EXPERT, make_generator
from lightning_dd.training import TrainRecipe, fit_classifier

__all__ = ["EXPERT_RECIPE", "ExpertBuffer", "expert_path", "load_expert_buffer", "train_experts"]

EXPERT_RECIPE = TrainRecipe(epochs=50, lr=0.01, momentum=0.0, weight_decay=0.0, batch_size=256,
                            dsa_strategy="color_crop_cutout_flip_scale_rotate", dsa_align_corners=True)
"""``buffer.py``'s defaults (``lr_teacher 0.01, mom 0, l2 0, batch_train 256, train_epochs 50, dsa True``); the
DSA strategy is replaced by the dataset's (no flip for digits)."""

#: recipe fields that must agree between the shards of one buffer (and between a resumed run and its shards)
_RECIPE_KEYS = ("epochs", "lr", "momentum", "weight_decay", "batch_size", "dsa_strategy", "dsa_align_corners")


def expert_path(directory: str | Path, index: int) -> Path:
    """The shard file of expert ``index`` in a buffer ``directory``."""
    return Path(directory) / f"expert_{index:05d}.pt"


class ExpertBuffer(PoolFile):
    """Expert trajectories of one architecture for one dataset / resolution / normalisation / image space.

    Args:
        trajectories: one ``(E + 1, P)`` float32 CPU tensor per expert: row 0 the initial parameters, row ``e`` the
            parameters after epoch ``e`` (flat, ``named_parameters()`` order).
        network, dataset, image_shape, num_classes, mean, std, space: what the experts were trained on.
        info: ``expert_ids`` (one per trajectory), the recipe (``epochs``, ``lr``, ...), ``seed``, ``zca``
            (fingerprint or ``None``), ``train_accuracy`` / ``test_accuracy`` per expert.
    """

    format_name = "lightning_dd.expert_buffer"
    format_version = 1
    kind = "expert buffer"
    payload_key = "trajectories"

    def __init__(self, trajectories: Sequence[Tensor], network: str, dataset: str, image_shape: Sequence[int],
                 num_classes: int, mean: Sequence[float], std: Sequence[float], space: str = "normalized",
                 info: Mapping[str, Any] | None = None, device: torch.device | str = "cpu") -> None:
        super().__init__([t.detach().to("cpu", torch.float32) for t in trajectories], network, dataset, image_shape,
                         num_classes, mean, std, space=space, info=info, device=device)
        lengths = {tuple(t.shape) for t in self._entries}
        if len(lengths) != 1:
            raise ValueError(f"the experts of a buffer must share one (epochs + 1, parameters) shape, got {lengths}")
        ids = self.info.setdefault("expert_ids", list(range(len(self))))
        if len(ids) != len(self):
            raise ValueError(f"info.expert_ids lists {len(ids)} experts for {len(self)} trajectories")

    @classmethod
    def _check_entry(cls, entry: Any, index: int) -> None:
        if not isinstance(entry, Tensor) or entry.dim() != 2 or entry.shape[0] < 2 or not entry.is_floating_point():
            shape = tuple(entry.shape) if isinstance(entry, Tensor) else type(entry).__name__
            raise ValueError(f"trajectories[{index}] must be a float (epochs + 1 >= 2, parameters) tensor, got {shape}")

    @classmethod
    def _from_file(cls, entries: list[Any], header: dict[str, Any], device: torch.device) -> ExpertBuffer:
        return cls(entries, header["network"], header["dataset"], header["image_shape"], header["num_classes"],
                   header["mean"], header["std"], header["space"], header["info"], device=device)

    @classmethod
    def create_hint(cls, path: str | Path) -> str:
        return f"train experts first with `lightning-dd experts --output {Path(path).parent}`"

    @classmethod
    def remedy(cls, dataset: str) -> str:
        return f"train experts for this data with `lightning-dd experts --data.dataset {dataset} ...`"

    def _materialize(self, entry: Any, device: torch.device) -> Tensor:
        return entry.to(device)

    @property
    def epochs(self) -> int:
        """Epochs ``E`` of every trajectory (each holds ``E + 1`` snapshots)."""
        return int(self._entries[0].shape[0]) - 1

    @property
    def num_parameters(self) -> int:
        return int(self._entries[0].shape[1])

    def snapshot(self, expert: int, epoch: int) -> Tensor:
        """Expert ``expert``'s flat parameters after epoch ``epoch`` (0 = at init), ``(P,)`` CPU float32 (a view)."""
        if not 0 <= epoch <= self.epochs:
            raise IndexError(f"the experts hold epochs 0..{self.epochs}, got {epoch}")
        entry: Tensor = self._entries[expert]
        return entry[epoch]

    def check_run(self, network: str, num_parameters: int, zca_fingerprint: str | None, epochs_needed: int) -> None:
        """Refuse a buffer of another network, parameter count, ZCA, or with too few epochs for the run."""
        problems = []
        if network != self.network:
            problems.append(f"network {self.network!r} (run: {network!r})")
        if num_parameters != self.num_parameters:
            problems.append(f"{self.num_parameters} parameters per expert (run's student: {num_parameters})")
        if (self.info.get("zca") or None) != zca_fingerprint:
            problems.append(f"ZCA {self.info.get('zca')!r} (run: {zca_fingerprint!r})")
        if epochs_needed > self.epochs:
            problems.append(f"{self.epochs} epochs per expert (run needs max_start_epoch - 1 + expert_epochs = "
                            f"{epochs_needed})")
        if problems:
            where = f"expert buffer {self.path.parent}" if self.path is not None else "the expert buffer"
            raise ValueError(f"{where} was made for {'; '.join(problems)}: train matching experts with "
                             "`lightning-dd experts` or change the run's settings")


def _agree(buffers: Sequence[ExpertBuffer], directory: Path) -> None:
    first = buffers[0]
    for other in buffers[1:]:
        mine = {**first.header(), "info": {k: first.info.get(k) for k in (*_RECIPE_KEYS, "seed", "zca")}}
        theirs = {**other.header(), "info": {k: other.info.get(k) for k in (*_RECIPE_KEYS, "seed", "zca")}}
        diff = [k for k in mine if mine[k] != theirs[k]]
        if diff or other.epochs != first.epochs:
            raise ValueError(f"the shards of expert buffer {str(directory)!r} disagree ({first.path} vs {other.path}: "
                             f"{diff or ['epochs']}); one buffer holds experts of one recipe")


def load_expert_buffer(directory: str | Path, max_experts: int | None = None) -> ExpertBuffer:
    """Every shard ``expert_*.pt`` of ``directory`` in one CPU buffer (expert-id order), checked to agree.

    Args:
        directory: the buffer directory written by :func:`train_experts`.
        max_experts: read only the first this many experts (memory: ``(E + 1) * P * 4`` bytes per expert).

    Raises:
        FileNotFoundError: no such directory or no shards in it (the message says how to create them).
        ValueError: a damaged shard, or shards of different recipes / data.
    """
    directory = Path(directory)
    shards = sorted(directory.glob("expert_*.pt")) if directory.is_dir() else []
    if not shards:
        raise FileNotFoundError(f"no expert buffer at {str(directory)!r} (no expert_*.pt files): train experts with "
                                f"`lightning-dd experts --output {directory}`")
    if max_experts is not None:
        if max_experts < 1:
            raise ValueError(f"max_experts must be >= 1, got {max_experts}")
        shards = shards[:max_experts]
    parts = [ExpertBuffer.load(path) for path in shards]
    _agree(parts, directory)
    first = parts[0]
    info = dict(first.info)
    for key in ("expert_ids", "train_accuracy", "test_accuracy"):
        info[key] = [value for part in parts for value in part.info.get(key, [None] * len(part))]
    merged = ExpertBuffer([t for part in parts for t in part.entries], first.network, first.dataset,
                          first.image_shape, first.num_classes, first.mean, first.std, first.space, info)
    merged.path = shards[0]
    return merged


@dataclass(frozen=True)
class _Data:
    dataset: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    space: str


def train_experts(
    images: Tensor,
    labels: Tensor,
    output: str | Path,
    *,
    dataset: str,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    space: str = "normalized",
    zca_fingerprint: str | None = None,
    network: str = "convnet",
    num_experts: int = 100,
    recipe: TrainRecipe = EXPERT_RECIPE,
    seed: int = 0,
    shard_index: int = 0,
    num_shards: int = 1,
    test: tuple[Tensor, Tensor] | None = None,
    device: torch.device | str = "cpu",
    log: Callable[[str], Any] = print,
) -> list[Path]:
    """Train the experts ``k < num_experts`` with ``k % num_shards == shard_index`` that are not on disk yet.

    Expert ``k`` is initialised and trained from ``make_generator(seed, STREAM_EXPERT, k)`` with
    :func:`~lightning_dd.training.fit_classifier`; an epoch hook records its flat parameters; the shard
    ``expert_path(output, k)`` is written atomically when it is done. Existing shards are kept (resume) if they were
    made with the same data and recipe, else refused.

    Args:
        images: ``(N, C, H, W)`` float32 train images in image ``space`` (any device).
        labels: int64 ``(N,)`` on ``images``' device.
        output: the buffer directory (created).
        dataset, num_classes, mean, std, space: recorded in every shard (what ``images`` are).
        zca_fingerprint: :meth:`~lightning_dd.augment.zca.ZCA.fingerprint` of the whitening in the ``zca`` space.
        network: zoo name of the experts (MTT: ConvNet-3; ``convnet_d4`` for Tiny ImageNet IPC 50).
        num_experts: experts in the whole buffer (MTT: 100).
        recipe: the training recipe (:data:`EXPERT_RECIPE` with the dataset's DSA strategy).
        seed: the buffer's seed.
        shard_index, num_shards: this process trains the experts ``k % num_shards == shard_index``.
        test: optional ``(images, labels)`` of the test split (same space) to report each expert's accuracy.
        device: where to train.
        log: progress lines (one per epoch and per expert).

    Returns:
        The shard paths of this process's experts (trained now or found).
    """
    for name, value, low in (("num_experts", num_experts, 1), ("num_shards", num_shards, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in [0, num_shards={num_shards}), got {shard_index!r}")
    data = _Data(dataset, int(num_classes), tuple(float(m) for m in mean), tuple(float(s) for s in std), space)
    directory = Path(output)
    directory.mkdir(parents=True, exist_ok=True)
    c, h, w = (int(s) for s in images.shape[1:])
    settings = {k: v for k, v in asdict(recipe).items() if k in _RECIPE_KEYS}
    mine = [k for k in range(num_experts) if k % num_shards == shard_index]
    paths = []
    device = torch.device(device)
    for done, k in enumerate(mine):
        path = expert_path(directory, k)
        paths.append(path)
        if path.is_file():
            _check_existing(ExpertBuffer.load(path), data, (c, h, w), network, settings, seed, zca_fingerprint)
            log(f"[lightning_dd] expert {k}: found {path.name}, kept")
            continue
        generator = make_generator(seed, STREAM_EXPERT, k)
        net = create_network(network, c, data.num_classes, (h, w), generator=generator).to(device)
        snapshots = [flat_parameters(net).cpu()]

        def record(epoch: int, trained: torch.nn.Module, k: int = k, done: int = done,
                   snapshots: list[Tensor] = snapshots) -> None:
            snapshots.append(flat_parameters(trained).cpu())
            log(f"[lightning_dd] expert {k} ({done + 1}/{len(mine)}): epoch {epoch + 1}/{recipe.epochs}")

        result = fit_classifier(net, images, labels, recipe, generator, device=device, on_epoch_end=record)
        test_accuracy = _accuracy(net, *test, device) if test is not None else None
        info = {**settings, "seed": seed, "zca": zca_fingerprint, "expert_ids": [k],
                "train_accuracy": [result.train_accuracy], "test_accuracy": [test_accuracy]}
        ExpertBuffer([torch.stack(snapshots)], network, data.dataset, (c, h, w), data.num_classes, data.mean,
                     data.std, data.space, info).save(path)
        shown = "" if test_accuracy is None else f", test accuracy {100 * test_accuracy:.2f}%"
        log(f"[lightning_dd] expert {k}: last-epoch train accuracy {100 * result.train_accuracy:.2f}%{shown}; "
            f"wrote {path}")
    return paths


def _check_existing(shard: ExpertBuffer, data: _Data, image_shape: tuple[int, int, int], network: str,
                    settings: dict[str, Any], seed: int, zca_fingerprint: str | None) -> None:
    """A shard found on disk must be what this run would write (else resuming would mix recipes)."""
    shard.check_compatible(data.dataset, image_shape, data.mean, data.std, data.space, num_classes=data.num_classes)
    found = {k: shard.info.get(k) for k in settings} | {"seed": shard.info.get("seed"), "zca": shard.info.get("zca"),
                                                         "network": shard.network}
    wanted = settings | {"seed": seed, "zca": zca_fingerprint, "network": network}
    diff = [f"{k}: file {found[k]!r}, run {wanted[k]!r}" for k in wanted
            if not (found[k] == wanted[k] or (isinstance(wanted[k], float) and isinstance(found[k], float)
                                              and math.isclose(found[k], wanted[k])))]
    if diff:
        raise ValueError(f"{shard.path} was trained with other settings ({'; '.join(diff)}); use another --output "
                         "directory or the same settings")


@torch.no_grad()
def _accuracy(net: torch.nn.Module, images: Tensor, labels: Tensor, device: torch.device) -> float:
    net.eval()
    correct = 0
    for start in range(0, images.shape[0], 512):
        x = images[start : start + 512].to(device)
        correct += int((net(x).argmax(1) == labels[start : start + 512].to(device)).sum())
    net.train()
    return correct / max(1, images.shape[0])
