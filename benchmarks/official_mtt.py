"""Time the official MTT code (GeorgeCazenavette/mtt-distillation ``distill.py``), unchanged, on CPU on our tensors.

``distill.py`` runs as a script (``runpy.run_path(..., run_name="__main__")``: its own ``argparse`` reads the
``sys.argv`` we set, then its ``main(args)`` runs), inside :func:`official_drivers._official_scope` (its folder first
on ``sys.path``, clashing modules stashed, working directory a temporary folder). Nothing of the official code is
copied here; the folder is extracted from the git mirror at run time. See :func:`time_official_mtt` for what is
replaced (data loading, evaluation, ``wandb``, ``kornia`` when missing, the device).

Setup (the mirror is a bare git repository; ``docs/`` holds large files that are not stored, so name the code)::

    # the fetch tool (source "github:GeorgeCazenavette/mtt-distillation") gives the bare repository:
    #   /work/.mirror/GeorgeCazenavette+mtt-distillation/repo
    mkdir -p /tmp/official/mtt
    git -C /work/.mirror/GeorgeCazenavette+mtt-distillation/repo archive HEAD \\
        distill.py utils.py networks.py reparam_module.py buffer.py | tar -x -C /tmp/official/mtt

(``git archive`` may print ``error: invalid object ... docs/animation.gif`` and still exit 0: the named files are
extracted.) Usage (one JSON object on stdout; the official prints go to stderr)::

    python benchmarks/official_mtt.py --mtt /tmp/official/mtt --root ~/.cache/lightning_dd/data/cifar10 \\
        --ipc 1 --syn-steps 50 --expert-epochs 2 --max-start-epoch 2 --iterations 2 [--zca] [--per-class 100]

:mod:`benchmarks.mtt_vs_official` compares it with ours.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import random
import runpy
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from official_drivers import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    NUM_CLASSES,
    _check_inputs,
    _durations,
    _mean_without_first,
    _official_scope,
    _subset,
)

__all__ = ["official_network_parameters", "time_official_mtt", "to_official_trajectory"]


# ---------------------------------------------------------------------------------------------------- stand-ins


class _Media:
    """``wandb.Histogram`` / ``wandb.Image`` stand-in: accepts anything, keeps nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


def _wandb_stub(progress: list[float], losses: list[float], start_epochs: list[int]) -> types.ModuleType:
    """A ``wandb`` module for ``distill.py``: ``init`` keeps ``config=args`` as ``wandb.config._items`` (distill.py
    rebuilds its ``args`` from it), ``log`` time-stamps every ``{"Progress": it}`` (the first statement of each
    iteration) and records ``Grand_Loss`` / ``Start_Epoch``, ``finish`` time-stamps the end of the run."""
    wandb = types.ModuleType("wandb")

    def init(*args: Any, config: Any = None, **kwargs: Any) -> types.SimpleNamespace:
        wandb.config = types.SimpleNamespace(_items=dict(vars(config)) if config is not None else {})
        wandb.run = types.SimpleNamespace(name="benchmark")
        return wandb.run

    def log(data: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        if "Progress" in data:
            progress.append(time.perf_counter())
        if "Grand_Loss" in data:
            losses.append(float(data["Grand_Loss"]))
        if "Start_Epoch" in data:
            start_epochs.append(int(data["Start_Epoch"]))

    def finish(*args: Any, **kwargs: Any) -> None:
        progress.append(time.perf_counter())

    wandb.init = init  # type: ignore[attr-defined]
    wandb.log = log  # type: ignore[attr-defined]
    wandb.finish = finish  # type: ignore[attr-defined]
    wandb.Histogram = _Media  # type: ignore[attr-defined]
    wandb.Image = _Media  # type: ignore[attr-defined]
    wandb.config = types.SimpleNamespace(_items={})  # type: ignore[attr-defined]
    wandb.run = None  # type: ignore[attr-defined]
    return wandb


def _kornia_stub() -> types.ModuleType:
    """``utils.py`` imports ``kornia`` for ``kornia.enhance.ZCAWhitening``, used only by the replaced get_dataset."""
    kornia = types.ModuleType("kornia")

    class ZCAWhitening:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("kornia is not installed: the benchmark supplies ZCA-whitened images itself")

    kornia.enhance = types.SimpleNamespace(ZCAWhitening=ZCAWhitening)  # type: ignore[attr-defined]
    return kornia


class _InverseZCA:
    """``args.zca_trans`` for ``distill.py``'s image logging (``inverse_transform`` only), over our fitted ZCA."""

    def __init__(self, zca: Any) -> None:
        self.zca = zca

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        return self.zca.inverse(x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.zca.transform(x)


@contextlib.contextmanager
def _global_rng_restored() -> Any:
    """The official code seeds and draws from the global ``random`` / numpy / torch generators: put them back."""
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])


# ---------------------------------------------------------------------------------------------------- trajectories


def official_network_parameters(mtt_dir: str | Path, model: str = "ConvNet") -> list[torch.Tensor]:
    """Parameters, in ``ReparamModule``'s flat order, of a fresh official ``get_network(model, 3, 10, (32, 32))``."""
    code_dir = Path(mtt_dir).resolve()
    stubs = {"wandb": _wandb_stub([], [], [])}
    if _missing("kornia"):
        stubs["kornia"] = _kornia_stub()
    with tempfile.TemporaryDirectory(prefix="official_mtt_") as tmp, _global_rng_restored(), \
            _official_scope(code_dir, ["distill.py"], Path(tmp), stubs=stubs):
        utils = importlib.import_module("utils")
        reparam = importlib.import_module("reparam_module")
        net = reparam.ReparamModule(utils.get_network(model, 3, NUM_CLASSES, (32, 32), dist=False))
        flat = net.flat_param.detach()
        return [part.reshape(s).clone() for part, s in zip(flat.split(net._param_numels), net._param_shapes,
                                                              strict=True)]


def to_official_trajectory(flat: torch.Tensor, shapes: Sequence[tuple[int, ...]]) -> list[list[torch.Tensor]]:
    """``(E + 1, P)`` flat snapshots (``named_parameters()`` order) -> ``buffer.py``'s format: per epoch, the list of
    parameter tensors. Requires the same order and shapes (checked: ``P`` must be their total)."""
    numels = [int(np.prod(s)) for s in shapes]
    if flat.dim() != 2 or flat.shape[1] != sum(numels):
        raise ValueError(f"trajectory of shape {tuple(flat.shape)} does not fit the official network "
                         f"({sum(numels)} parameters)")
    return [[part.reshape(s).clone() for part, s in zip(torch.split(row, numels), shapes, strict=True)]
            for row in flat.detach().cpu().float()]


def _missing(module: str) -> bool:
    return importlib.util.find_spec(module) is None


# ---------------------------------------------------------------------------------------------------- driver


def time_official_mtt(
    mtt_dir: str | Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    ipc: int,
    syn_steps: int,
    expert_epochs: int,
    max_start_epoch: int,
    batch_syn: int | None = None,
    iterations: int,
    trajectories: Sequence[torch.Tensor] | None = None,
    zca: Any = None,
    lr_img: float = 100.0,
    lr_lr: float = 1e-7,
    lr_teacher: float = 0.01,
    seed: int = 0,
    force_cpu: bool = True,
) -> dict[str, Any]:
    """Time GeorgeCazenavette/mtt-distillation ``distill.py`` (as a script, unchanged) on our tensors, on the CPU.

    ``sys.argv`` = ``distill.py --dataset CIFAR10 --model ConvNet --ipc IPC --syn_steps S --expert_epochs E
    --max_start_epoch M --lr_img LR --lr_lr LR --lr_teacher LR [--batch_syn B] [--zca] --Iteration N --eval_it N+1
    --num_eval 1 --buffer_path <tmp> --data_path <tmp>``; its other defaults stand (``--pix_init real``, ``--dsa
    True`` with ``color_crop_cutout_flip_scale_rotate``, ``--eval_mode S``, not ``--load_all``). ``--eval_it N + 1``
    leaves ``it = 0`` as the only evaluation point of the official loop ``it = 0 .. N``.

    Replaced, nothing else:

    * ``utils.get_dataset`` (bound by ``distill.py``'s ``from utils import ...``): CIFAR-10 metadata (3, (32, 32),
      10 classes, names, mean/std), ``dst_train`` = the official ``TensorDataset(images, labels)`` (``images`` as
      given: ZCA-whitened with ``zca``, else normalized), a 10-image test set and loader (unused), ``class_map``
      identity; with ``zca`` it sets ``args.zca_trans`` as the official one does (an object whose
      ``inverse_transform`` is our ``ZCA.inverse``, used only by the image logging at ``it = 0``);
    * ``utils.evaluate_synset``: returns ``(None, 0.0, 0.0)`` (evaluation is not part of an iteration);
    * ``wandb``: a stand-in module (``init`` / ``config._items`` / ``log`` / ``run.name`` / ``Histogram`` /
      ``Image`` / ``finish``); its ``log`` time-stamps ``{"Progress": it}``, the first statement of every iteration;
    * ``kornia`` (imported by ``utils.py`` for its ZCA only): an empty stand-in if it is not installed;
    * ``torch.cuda.is_available`` / ``device_count`` (``force_cpu``): no GPU, so ``args.device`` is ``cpu`` and
      ``args.distributed`` False; ``torch.Tensor.cuda``: identity (the ``it = 0`` image saving calls
      ``image_syn.cuda()``).

    Expert buffer: ``<tmp>/CIFAR10[_NO_ZCA]/ConvNet/replay_buffer_0.pt`` (``buffer.py``'s format: a list of
    trajectories, each a list per epoch of the parameter tensors) holding ``N + 2`` experts, so the official loop
    never reloads a file in the timed window (with ``buffer.py``'s files of 10 experts it ``torch.load`` s the next
    file every 10 iterations; that I/O is not timed here). Expert ``k`` is ``trajectories[k % len]`` cut to the
    ``max_start_epoch + expert_epochs + 1`` epochs the run can read, converted with :func:`to_official_trajectory`
    (the official ConvNet has our parameter order and shapes: the total is checked here, the shapes by
    ``mtt_vs_official.py``), or, without ``trajectories``, a random walk
    from an official ``get_network`` init (``+ 0.01 * randn`` per epoch).

    Timing: iteration ``k`` runs from its ``Progress`` log to the next one (the last to ``wandb.finish()``); the
    first (``it = 0``: warm-up, evaluation no-op and image saving) is excluded from ``seconds_per_iteration``.
    The global ``random`` / numpy / torch RNG states are seeded with ``seed`` and restored afterwards (the official
    ``get_network`` re-seeds torch from the clock). Torch threads are left as the caller set them.

    Args:
        mtt_dir: folder holding ``distill.py``, ``utils.py``, ``networks.py``, ``reparam_module.py``.
        images: ``float32 (N, 3, 32, 32)`` train images in the run's space (ZCA-whitened if ``zca`` is given).
        labels: ``int64 (N,)`` covering 0..9.
        ipc, syn_steps, expert_epochs, max_start_epoch, batch_syn, lr_img, lr_lr, lr_teacher: ``distill.py``
            arguments (``batch_syn`` ``None`` = all ``10 * ipc`` images per step, the default).
        iterations: ``--Iteration N`` (the loop runs ``N + 1`` iterations, ``it = 0`` excluded).
        trajectories: ``(E + 1, P)`` flat expert trajectories (e.g. an ``ExpertBuffer``'s entries), or ``None``.
        zca: our fitted :class:`~lightning_dd.augment.zca.ZCA` when ``images`` are whitened (passes ``--zca``).
        seed: seeds ``random`` / numpy / torch before the run (expert order, start epochs, DSA draws).
        force_cpu: report no GPU to the official code while it runs.

    Returns:
        ``{"seconds_per_iteration", "iterations", "per_iteration", "losses", "start_epochs", "settings"}``.
    """
    _check_inputs(images, labels)
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    code_dir = Path(mtt_dir).resolve()
    if not (code_dir / "distill.py").is_file():
        raise FileNotFoundError(f"{code_dir}/distill.py not found (extract GeorgeCazenavette/mtt-distillation there)")
    epochs = max_start_epoch + expert_epochs  # snapshots 0..epochs are readable
    init = official_network_parameters(code_dir)
    shapes = [tuple(p.shape) for p in init]
    progress: list[float] = []
    losses: list[float] = []
    start_epochs: list[int] = []
    with tempfile.TemporaryDirectory(prefix="official_mtt_") as tmp, _global_rng_restored():
        tmp_dir = Path(tmp)
        expert_dir = tmp_dir / "buffers" / ("CIFAR10" if zca is not None else "CIFAR10_NO_ZCA") / "ConvNet"
        expert_dir.mkdir(parents=True)
        torch.manual_seed(seed)
        experts = []
        for k in range(iterations + 2):
            if trajectories:
                flat = trajectories[k % len(trajectories)]
                if flat.shape[0] < epochs + 1:
                    raise ValueError(f"trajectories hold {flat.shape[0] - 1} epochs, the run needs {epochs}")
                experts.append(to_official_trajectory(flat[: epochs + 1], shapes))
            else:
                walk = [p.clone() for p in init]
                trajectory = [[p.clone() for p in walk]]
                for _ in range(epochs):
                    walk = [p + 0.01 * torch.randn_like(p) for p in walk]
                    trajectory.append([p.clone() for p in walk])
                experts.append(trajectory)
        torch.save(experts, expert_dir / "replay_buffer_0.pt")
        del experts
        argv = [
            "distill.py",
            "--dataset", "CIFAR10", "--model", "ConvNet", "--ipc", str(ipc),
            "--syn_steps", str(syn_steps), "--expert_epochs", str(expert_epochs),
            "--max_start_epoch", str(max_start_epoch),
            "--lr_img", repr(float(lr_img)), "--lr_lr", repr(float(lr_lr)), "--lr_teacher", repr(float(lr_teacher)),
            *(["--batch_syn", str(batch_syn)] if batch_syn is not None else []),
            *(["--zca"] if zca is not None else []),
            "--Iteration", str(iterations), "--eval_it", str(iterations + 1), "--num_eval", "1",
            "--buffer_path", str(tmp_dir / "buffers"), "--data_path", str(tmp_dir / "data"),
        ]  # fmt: skip
        stubs = {"wandb": _wandb_stub(progress, losses, start_epochs)}
        if _missing("kornia"):
            stubs["kornia"] = _kornia_stub()
        with _official_scope(code_dir, argv, tmp_dir, stubs=stubs) as patch:
            utils = importlib.import_module("utils")

            def get_dataset(dataset: str, data_path: str, batch_size: int = 1, subset: str = "imagenette",
                            args: Any = None) -> tuple:
                if dataset != "CIFAR10":
                    raise ValueError(f"the benchmark supplies CIFAR10 only, got {dataset}")
                if args is not None and getattr(args, "zca", False):
                    args.zca_trans = _InverseZCA(zca)
                dst_train = utils.TensorDataset(images, labels)
                dst_test = utils.TensorDataset(images[:10], labels[:10])
                testloader = torch.utils.data.DataLoader(dst_test, batch_size=128, shuffle=False, num_workers=0)
                class_map = {x: x for x in range(NUM_CLASSES)}
                return (3, (32, 32), NUM_CLASSES, list(CIFAR10_CLASSES), list(CIFAR10_MEAN), list(CIFAR10_STD),
                        dst_train, dst_test, testloader, None, class_map, None)  # fmt: skip

            def evaluate_synset(*args: Any, **kwargs: Any) -> tuple[None, float, float]:
                return None, 0.0, 0.0

            patch.set(utils, "get_dataset", get_dataset)
            patch.set(utils, "evaluate_synset", evaluate_synset)
            patch.set(torch.Tensor, "cuda", lambda self, *a, **kw: self)
            if force_cpu:
                patch.set(torch.cuda, "is_available", lambda: False)
                patch.set(torch.cuda, "device_count", lambda: 0)
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            runpy.run_path(str(code_dir / "distill.py"), run_name="__main__")

    per_iteration = _durations(progress)
    if len(per_iteration) != iterations + 1:
        raise RuntimeError(f"expected {iterations + 1} timed iterations, got {len(per_iteration)}")
    return {
        "seconds_per_iteration": _mean_without_first(per_iteration),
        "iterations": iterations,
        "per_iteration": per_iteration,
        "losses": losses,
        "start_epochs": start_epochs,
        "settings": {
            "code": "GeorgeCazenavette/mtt-distillation distill.py (run as __main__)",
            "argv": argv[1:-4],  # without the temporary paths
            "experts_in_file": iterations + 2,
            "trajectories": "given" if trajectories else "random walk",
            "num_real_images": int(images.shape[0]),
            "device": "cpu" if force_cpu or not torch.cuda.is_available() else "cuda",
            "torch_threads": torch.get_num_threads(),
            "mean_over": "iterations it=1..N (official loop runs it=0..N); it=0 (warm-up, evaluation) excluded",
            "interval": "from one wandb.log({'Progress': it}) to the next (last: to wandb.finish())",
        },
    }


# ---------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: CIFAR-10 from ``lightning_dd`` (optionally ZCA-whitened), run the official code, print JSON."""
    from lightning_dd.augment.zca import ZCA
    from lightning_dd.data import RealDataModule

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mtt", required=True, help="extracted GeorgeCazenavette/mtt-distillation")
    parser.add_argument("--root", required=True, help="CIFAR-10 root for RealDataModule('cifar10', root=...)")
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--syn-steps", type=int, default=50)
    parser.add_argument("--expert-epochs", type=int, default=2)
    parser.add_argument("--max-start-epoch", type=int, default=2)
    parser.add_argument("--batch-syn", type=int, default=None)
    parser.add_argument("--lr-img", type=float, default=100.0)
    parser.add_argument("--lr-lr", type=float, default=1e-7)
    parser.add_argument("--lr-teacher", type=float, default=0.01)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--zca", action="store_true", help="ZCA-whiten (fitted on the images used) and pass --zca")
    parser.add_argument("--per-class", type=int, default=None, help="use only the first K train images per class")
    parser.add_argument("--threads", type=int, default=None)
    opts = parser.parse_args(argv)
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    data = RealDataModule("cifar10", root=opts.root)
    store = data.load_train()
    images_u8, labels = _subset(store.images, store.labels.long(), opts.per_class)
    zca = ZCA.fit(images_u8) if opts.zca else None
    images = zca.transform(images_u8) if zca is not None else data.normalize(images_u8)
    with contextlib.redirect_stdout(sys.stderr):
        out = time_official_mtt(opts.mtt, images, labels, ipc=opts.ipc, syn_steps=opts.syn_steps,
                                expert_epochs=opts.expert_epochs, max_start_epoch=opts.max_start_epoch,
                                batch_syn=opts.batch_syn, iterations=opts.iterations, zca=zca, lr_img=opts.lr_img,
                                lr_lr=opts.lr_lr, lr_teacher=opts.lr_teacher)
    out["mean_of_all"] = statistics.fmean(out["per_iteration"])
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
