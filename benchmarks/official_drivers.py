"""Time the official reference implementations, unchanged, on CPU, on in-memory CIFAR-10 tensors we supply.

Two drivers, each running the official entry point as it is (nothing of the official code is copied here; the
folders are extracted from the git mirrors at run time and passed in), with only the data loading, the evaluation,
the device (CPU; IDC hard-codes CUDA) and one PyTorch-version incompatibility of the DSA code replaced:

* :func:`time_official_dsa`: ``main.py`` ``main()`` of VICO-UoE/DatasetCondensation (DC/DSA gradient matching,
  ConvNet, SGD ``lr_img`` 0.1, ``--init real``), with ``sys.argv`` set as on the command line. Patched in the
  imported ``main`` module's namespace: ``get_dataset`` (our tensors, CIFAR-10 metadata, a 10-image test set),
  ``evaluate_synset`` (no-op: evaluation is not part of a distillation iteration) and ``get_network`` (wrapped to
  time-stamp each iteration; it still builds the official network). ``torch.cuda.is_available`` /
  ``torch.cuda.device_count`` report no GPU while it runs (``force_cpu``), so the official code picks ``cpu`` itself
  even where a GPU exists. ``torch.Tensor.__setitem__`` clones a value that shares memory with its destination
  (the Siamese augmentation's ``randb[:] = randb[0]`` fails on current PyTorch for a one-image batch, IPC 1).
  ``torch.save`` / ``save_image`` write into a temporary folder, as the official code does.
* :func:`time_official_idc`: ``condense.condense()`` of snu-mllab/Efficient-Dataset-Condensation with the arguments of
  ``python condense.py --reproduce -d cifar10 -f FACTOR --ipc IPC --inner_loop L --batch_real B --test`` (parsed by
  the official ``argument.py``, which reads ``sys.argv`` at import; ``n_data`` and ``niter``, which ``--reproduce``
  overwrites, are set on the parsed ``args`` afterwards). The official code hard-codes CUDA in several places; see
  :func:`time_official_idc` for the full list of what is replaced.

Setup: extract the mirrors (bare git repositories, no work tree) into a temporary folder::

    mkdir -p /tmp/official/vico /tmp/official/idc
    git -C /work/.mirror/VICO-UoE+DatasetCondensation/repo archive HEAD | tar -x -C /tmp/official/vico
    git -C /work/.mirror/snu-mllab+Efficient-Dataset-Condensation/repo archive HEAD | tar -x -C /tmp/official/idc

Usage (prints one JSON object on stdout; the official code's own prints go to stderr)::

    python benchmarks/official_drivers.py --vico /tmp/official/vico --idc /tmp/official/idc \\
        --root ~/.cache/lightning_dd/data/cifar10 --ipc 1 --iterations 2 [--per-class 100] [--batch-real 16] \\
        [--inner-loop 2] [--outer-iterations 2] [--n-data 128] [--threads N] [--only dsa|idc]

Both modules are imported in isolation: the official folder goes first on ``sys.path``, every module named like one
of its top-level files/folders (``main``, ``utils``, ``data``, ``train``, ``test``, ``misc``, ``models``, ...) is
taken out of ``sys.modules`` before and put back after, and ``sys.path`` / ``sys.argv`` / the working directory (a
temporary folder while the official code runs) are restored. Torch threads are left as the caller set them.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import importlib.util
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

CIFAR10_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR10_STD = [0.2023, 0.1994, 0.2010]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
NUM_CLASSES = 10


class _StopCondensing(Exception):
    """Raised from the wrapped ``define_model`` once the requested outer iterations have run."""


# ---------------------------------------------------------------------------------------------------- helpers


class _Patcher:
    """Set attributes and put the old values (or their absence) back on :meth:`restore`, last set first.

    An attribute a class only inherits is deleted again from the class rather than re-set on it, so the class ends
    up exactly as it was (its C slots included, e.g. ``torch.Tensor.__setitem__``).
    """

    _MISSING = object()

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any]] = []

    def set(self, owner: Any, name: str, value: Any) -> Any:
        """Set ``owner.name = value``; return the previous value (``None`` when there was none)."""
        old = getattr(owner, name, self._MISSING)
        inherited = isinstance(owner, type) and name not in vars(owner)
        self._undo.append((owner, name, self._MISSING if inherited else old))
        setattr(owner, name, value)
        return None if old is self._MISSING else old

    def restore(self) -> None:
        """Undo every :meth:`set`, in reverse order."""
        while self._undo:
            owner, name, old = self._undo.pop()
            if old is self._MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)


def _top_level_names(code_dir: Path) -> set[str]:
    """Module names that the files and folders directly under ``code_dir`` would be imported as."""
    names = {p.stem for p in code_dir.glob("*.py")}
    names |= {p.name for p in code_dir.iterdir() if p.is_dir() and p.name.isidentifier()}
    return names


@contextlib.contextmanager
def _official_scope(
    code_dir: Path, argv: list[str], workdir: Path, stubs: dict[str, types.ModuleType] | None = None
) -> Iterator[_Patcher]:
    """Import context for an official repository checkout.

    ``code_dir`` first on ``sys.path``; clashing modules stashed out of ``sys.modules`` (and the official ones removed
    again on exit); folders without ``__init__.py`` that hold ``.py`` files pre-registered as namespace packages over
    ``code_dir`` (so no other ``misc`` / ``models`` on ``sys.path`` can shadow them); ``sys.argv`` set; the working
    directory moved to ``workdir``; the warning filters restored on exit; ``stubs`` (stand-ins for missing
    third-party modules) in ``sys.modules`` until exit. Yields a :class:`_Patcher` whose patches are undone on exit.
    """
    stubs = stubs or {}
    names = _top_level_names(code_dir) | set(stubs)
    saved_modules = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] in names}
    saved_path, saved_argv, saved_cwd = list(sys.path), list(sys.argv), os.getcwd()
    saved_filters = list(warnings.filters)  # the official modules call warnings.filterwarnings("ignore") at import
    patcher = _Patcher()
    try:
        sys.path.insert(0, str(code_dir))
        for sub in code_dir.iterdir():
            namespace = sub.is_dir() and not (sub / "__init__.py").exists() and any(sub.glob("*.py"))
            if namespace and sub.name.isidentifier():
                pkg = types.ModuleType(sub.name)
                pkg.__path__ = [str(sub)]
                sys.modules[sub.name] = pkg
        sys.modules.update(stubs)
        importlib.invalidate_caches()
        sys.argv[:] = argv
        os.chdir(workdir)
        yield patcher
    finally:
        patcher.restore()
        warnings.filters[:] = saved_filters
        os.chdir(saved_cwd)
        sys.argv[:] = saved_argv
        sys.path[:] = saved_path
        for k in list(sys.modules):
            if k.split(".")[0] in names:
                del sys.modules[k]
        sys.modules.update(saved_modules)
        importlib.invalidate_caches()


def _check_inputs(images: torch.Tensor, labels: torch.Tensor) -> None:
    if images.device.type != "cpu" or labels.device.type != "cpu":
        raise ValueError("images and labels must be CPU tensors")
    if images.dim() != 4 or tuple(images.shape[1:]) != (3, 32, 32) or images.dtype != torch.float32:
        raise ValueError(f"images must be float32 (N, 3, 32, 32), got {images.dtype} {tuple(images.shape)}")
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"labels must be (N,) matching images, got {tuple(labels.shape)}")
    present = set(torch.unique(labels).tolist())
    if present != set(range(NUM_CLASSES)):
        raise ValueError(f"labels must cover exactly the classes 0..9, got {sorted(present)}")


def _durations(stamps: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(stamps)]


def _mean_without_first(values: list[float]) -> float:
    """Mean of ``values`` without the first one (one-time warm-up), or the only value when there is just one."""
    if not values:
        raise RuntimeError("no iteration was timed")
    return statistics.fmean(values[1:] if len(values) > 1 else values)


# ---------------------------------------------------------------------------------------------------- DSA


def _setitem_cloning_overlap(setitem: Callable) -> Callable:
    """``Tensor.__setitem__`` that clones a tensor value sharing memory with the destination before writing.

    The official Siamese augmentation broadcasts the first sample's parameters with ``randb[:] = randb[0]`` (also
    ``theta``, ``randf``, ``rands``, ``randc``, ``translation_x/y``, ``offset_x/y``). For a batch of one image (the
    synthetic batch at IPC 1) source and destination are the same memory, which PyTorch >= 1.8 rejects ("some
    elements of the input tensor and the written-to tensor refer to a single memory location", reported as
    VICO-UoE/DatasetCondensation issue #20). Cloning the value first gives what the code means, and what older
    PyTorch did; for other values this only adds a pointer comparison.
    """

    @functools.wraps(setitem)
    def wrapper(self: torch.Tensor, index: Any, value: Any) -> None:
        if (
            isinstance(value, torch.Tensor)
            and value.device == self.device
            and value.untyped_storage().data_ptr() == self.untyped_storage().data_ptr()
        ):
            value = value.clone()
        setitem(self, index, value)

    return wrapper


def time_official_dsa(
    vico_dir: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    ipc: int,
    batch_real: int,
    iterations: int,
    method: str = "DSA",
    strategy: str = "color_crop_cutout_flip_scale_rotate",
    force_cpu: bool = True,
) -> dict:
    """Time VICO-UoE/DatasetCondensation ``main.py`` ``main()`` (DC/DSA gradient matching), as is, on our tensors.

    Runs ``main()`` with ``sys.argv`` = ``--method METHOD --dataset CIFAR10 --model ConvNet --ipc IPC --Iteration N
    --num_exp 1 --num_eval 1 --init real --dsa_strategy STRATEGY --batch_real B --data_path <tmp> --save_path <tmp>``
    (so ``outer_loop`` / ``inner_loop`` come from the official ``get_loops(ipc)``, ``lr_img`` 0.1, ``lr_net`` 0.01,
    ``batch_train`` 256, ``dis_metric`` ``ours``). Patched in the imported ``main`` namespace only:

    * ``get_dataset``: channel 3, ``(32, 32)``, 10 classes, CIFAR-10 names, mean/std, ``dst_train`` = the official
      ``TensorDataset(images, labels)``, a 10-image ``dst_test`` and its ``DataLoader`` (never used: see next);
    * ``evaluate_synset``: returns ``(None, 0.0, 0.0)`` (evaluation is not part of a distillation iteration);
    * ``get_network``: the official function, called through a wrapper that time-stamps every call. The training
      loop draws one fresh network per iteration; the evaluation block draws one per evaluated model, and the stamp
      of such a call is dropped again by the patched ``evaluate_synset`` that follows it;
    * ``torch.Tensor.__setitem__`` (while ``main()`` runs): clones a value sharing memory with its destination (see
      :func:`_setitem_cloning_overlap`; needed at IPC 1 on current PyTorch);
    * ``torch.cuda.is_available`` / ``device_count`` (``force_cpu``): no GPU, so ``args.device`` is ``cpu``.

    The official loop runs ``it = 0 .. N`` (``N + 1`` training iterations). Iteration ``k`` is timed from its
    network draw to the next one (the last one to the return of ``main()``, which adds the final ``torch.save``),
    so each interval holds the iteration's whole outer/inner loop and, every 500 iterations, the (no-op) evaluation
    block with its ``save_image``. The first interval (``it = 0``: first-call warm-up) is excluded from the mean:
    ``seconds_per_iteration`` is the mean over the ``N`` iterations ``it = 1 .. N`` (the first one alone if ``N = 0``).

    Args:
        vico_dir: folder holding the repository's files (``main.py``, ``utils.py``, ``networks.py``).
        images: ``float32 (N, 3, 32, 32)`` CIFAR-10 train images, normalized with the CIFAR-10 mean/std.
        labels: ``int64 (N,)`` class indices covering 0..9.
        ipc: images per class (the official ``get_loops`` knows 1, 10, 20, 30, 40, 50).
        batch_real: real images per class per matching step (``--batch_real``).
        iterations: ``--Iteration``.
        method: ``DSA`` or ``DC``.
        strategy: ``--dsa_strategy``.
        force_cpu: report no GPU to the official code while it runs, so it runs on the CPU even where CUDA exists.

    Returns:
        ``{"seconds_per_iteration", "iterations", "per_iteration", "settings"}``: ``per_iteration`` lists all
        ``N + 1`` timed iterations (first included), ``iterations`` the number averaged.
    """
    _check_inputs(images, labels)
    if ipc not in (1, 10, 20, 30, 40, 50):
        raise ValueError(f"the official get_loops defines ipc 1, 10, 20, 30, 40, 50 only, got {ipc}")
    code_dir = Path(vico_dir).resolve()
    if not (code_dir / "main.py").is_file():
        raise FileNotFoundError(f"{code_dir}/main.py not found (extract VICO-UoE/DatasetCondensation there)")
    with tempfile.TemporaryDirectory(prefix="official_dsa_") as tmp:
        tmp_dir = Path(tmp)
        argv = [
            "main.py",
            "--method", method,
            "--dataset", "CIFAR10",
            "--model", "ConvNet",
            "--ipc", str(ipc),
            "--Iteration", str(iterations),
            "--num_exp", "1",
            "--num_eval", "1",
            "--init", "real",
            "--dsa_strategy", strategy,
            "--batch_real", str(batch_real),
            "--data_path", str(tmp_dir / "data"),
            "--save_path", str(tmp_dir / "result"),
        ]  # fmt: skip
        with _official_scope(code_dir, argv, tmp_dir) as patch:
            main = importlib.import_module("main")
            stamps: list[float] = []

            def get_dataset(dataset: str, data_path: str) -> tuple:
                dst_train = main.TensorDataset(images, labels)
                dst_test = main.TensorDataset(images[:10], labels[:10])
                testloader = torch.utils.data.DataLoader(dst_test, batch_size=256, shuffle=False, num_workers=0)
                return (3, (32, 32), NUM_CLASSES, list(CIFAR10_CLASSES), list(CIFAR10_MEAN), list(CIFAR10_STD),
                        dst_train, dst_test, testloader)  # fmt: skip

            official_get_network = main.get_network

            def get_network(*args: Any, **kwargs: Any) -> nn.Module:
                stamps.append(time.perf_counter())
                return official_get_network(*args, **kwargs)

            def evaluate_synset(*args: Any, **kwargs: Any) -> tuple[None, float, float]:
                stamps.pop()  # the network just drawn was the evaluation's, not an iteration's
                return None, 0.0, 0.0

            patch.set(main, "get_dataset", get_dataset)
            patch.set(main, "get_network", get_network)
            patch.set(main, "evaluate_synset", evaluate_synset)
            patch.set(torch.Tensor, "__setitem__", _setitem_cloning_overlap(torch.Tensor.__setitem__))
            if force_cpu:
                patch.set(torch.cuda, "is_available", lambda: False)
                patch.set(torch.cuda, "device_count", lambda: 0)
            outer_loop, inner_loop = main.get_loops(ipc)
            main.main()
            stamps.append(time.perf_counter())

    per_iteration = _durations(stamps)
    if len(per_iteration) != iterations + 1:
        raise RuntimeError(f"expected {iterations + 1} timed iterations, got {len(per_iteration)}")
    return {
        "seconds_per_iteration": _mean_without_first(per_iteration),
        "iterations": max(1, len(per_iteration) - 1),
        "per_iteration": per_iteration,
        "settings": {
            "code": "VICO-UoE/DatasetCondensation main.py main()",
            "argv": argv[1:-4],  # without the temporary paths
            "method": method,
            "ipc": ipc,
            "batch_real": batch_real,
            "outer_loop": outer_loop,
            "inner_loop": inner_loop,
            "lr_img": 0.1,
            "model": "ConvNet",
            "num_real_images": int(images.shape[0]),
            "device": "cpu" if force_cpu or not torch.cuda.is_available() else "cuda",
            "torch_threads": torch.get_num_threads(),
            "mean_over": "iterations it=1..N (official loop runs it=0..N); it=0 (warm-up) excluded",
            "interval": "from one training get_network call to the next (last: to main() returning)",
        },
    }


# ---------------------------------------------------------------------------------------------------- IDC


class _PixelDataset(torch.utils.data.Dataset):
    """``[0, 1]`` float images with ``targets`` / ``nclass``, like the ``datasets.CIFAR10(transform=ToTensor())`` of
    the official ``load_resized_data`` (which normalizes later, inside its augmentation)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable | None = None) -> None:
        self.images = images
        self.targets = [int(t) for t in labels.tolist()]
        self.nclass = NUM_CLASSES
        self.transform = transform

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = self.images[index]  # IndexError past the end ends plain iteration (the official loader iterates)
        if self.transform is not None:
            img = self.transform(img)
        return img, self.targets[index]


def _redirect_cuda(fn: Callable) -> Callable:
    """``fn`` with a ``device`` argument naming CUDA replaced by ``cpu``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        device = kwargs.get("device")
        if device is not None and torch.device(device).type == "cuda":
            kwargs["device"] = "cpu"
        return fn(*args, **kwargs)

    return wrapper


def time_official_idc(
    idc_dir: str,
    images_pixels: torch.Tensor,
    labels: torch.Tensor,
    *,
    ipc: int,
    factor: int = 2,
    inner_loop: int,
    outer_iterations: int,
    n_data: int = 2000,
    batch_real: int = 64,
) -> dict:
    """Time snu-mllab/Efficient-Dataset-Condensation ``condense.condense()`` (IDC), as is, on CPU on our tensors.

    Arguments: the official ``argument.py`` parses ``condense.py --reproduce -d cifar10 -f FACTOR --ipc IPC
    --inner_loop L --batch_real B --test --data_dir <tmp>`` (``--reproduce``: ConvNet-3, instance norm, metric
    ``mse``, ``lr_img`` 5e-3 rescaled by ``tune_lr_img`` to ``5e-3 * ipc / 10``, ``factor > 1`` -> ``init mix``,
    matching augmentation ``color_crop_cutout``, network updates with ``color_crop`` + CutMix at ``mix_p`` 0.5;
    ``--test``: the official switch that skips ``synset.test``). ``--reproduce`` overwrites ``n_data`` (2000) and
    ``niter`` (2000), so they are set on ``args`` after parsing: ``n_data`` as given, ``niter`` large enough that
    ``n_iter = niter * 100 // inner_loop`` is at least ``max(50, 10 * (outer_iterations + 1))`` (>= 50 because the
    official log interval ``n_iter // 50`` must not be 0; the factor 10 keeps its save points, the first at
    ``n_iter // 10``, out of the timed iterations). The run is stopped when ``define_model`` is called for outer
    iteration ``outer_iterations + 1``. ``args.save_dir`` is a temporary folder.

    Replaced (all because the official code hard-codes CUDA, or for data / evaluation / image saving):

    * ``condense.load_resized_data``: returns a dataset over our tensors (``[0, 1]`` float images, ``.targets``,
      ``.nclass``) and a 10-image normalized validation loader (unused);
    * ``condense.Synthesizer``: subclass built with ``device='cpu'`` (the official default is ``'cuda'``) whose
      ``test`` is a no-op (already skipped by ``--test``);
    * ``condense.ClassMemDataLoader`` / ``condense.diffaug``: called with ``device='cpu'`` (defaults ``'cuda'``);
    * ``train.random_indices`` (CutMix permutation): called with ``device='cpu'`` (default ``'cuda'``);
    * ``torch.Tensor.cuda`` / ``nn.Module.cuda``: no-ops while the code runs (``train_epoch`` calls ``.cuda()`` on
      the batches of a CPU loader);
    * ``torch.tensor`` during the import only: ``device='cuda'`` -> ``'cpu'`` (``train.py`` builds its module-level
      mean/std tensors on CUDA; they are not used by ``condense``);
    * ``condense.save_img``: no-op (image saving); ``condense.define_model``: wrapped to time-stamp each call;
    * ``np.int = int`` if numpy lacks it (``misc.utils.rand_bbox``, CutMix); ``efficientnet_pytorch``: an empty
      stand-in module if it is not installed (imported by ``train.py`` / ``test.py``, used only for
      ``net_type='efficient'``).

    ``condense`` is called with ``device='cpu'`` (its parameter). One of *our* iterations is one official inner
    step ``ot``: per class, one real batch and the class's decoded synthetic images matched and the images
    updated, then the network trained on ``n_data`` real images. Each outer iteration (one ``define_model``, fresh
    network, ``inner_loop`` steps) is timed from its ``define_model`` call to the next; ``seconds_per_inner_step`` is
    the mean over the outer iterations without the first (warm-up; the first alone when there is only one) divided
    by ``inner_loop``; ``seconds_per_inner_step_all`` includes the first.

    Args:
        idc_dir: folder holding the repository's files (``condense.py``, ``argument.py``, ``data.py``, ...).
        images_pixels: ``float32 (N, 3, 32, 32)`` CIFAR-10 train images in ``[0, 1]``.
        labels: ``int64 (N,)`` class indices covering 0..9.
        ipc: images per class (``--ipc``), each decoded into ``factor ** 2`` images.
        factor: multi-formation factor (``-f``).
        inner_loop: inner steps per outer iteration (``--inner_loop``; the official default is 100).
        outer_iterations: outer iterations to time.
        n_data: real images per network update (``--reproduce`` uses 2000 for CIFAR-10).
        batch_real: real images per class per matching step, and per network-update batch (``--batch_real``).

    Returns:
        ``{"seconds_per_inner_step", "seconds_per_inner_step_all", "outer_iterations", "inner_loop", "per_outer",
        "settings"}``; ``per_outer`` lists the seconds of every timed outer iteration.
    """
    _check_inputs(images_pixels, labels)
    if outer_iterations < 1 or inner_loop < 1:
        raise ValueError("outer_iterations and inner_loop must be >= 1")
    code_dir = Path(idc_dir).resolve()
    if not (code_dir / "condense.py").is_file():
        raise FileNotFoundError(f"{code_dir}/condense.py not found (extract snu-mllab/Efficient-Dataset-Condensation)")
    target_n_iter = max(50, 10 * (outer_iterations + 1))
    niter = math.ceil(target_n_iter * inner_loop / 100)
    with tempfile.TemporaryDirectory(prefix="official_idc_") as tmp:
        tmp_dir = Path(tmp)
        argv = [
            "condense.py", "--reproduce", "-d", "cifar10", "-f", str(factor), "--ipc", str(ipc),
            "--inner_loop", str(inner_loop), "--batch_real", str(batch_real), "--test", "--data_dir", str(tmp_dir),
        ]  # fmt: skip
        stubs = {}
        if importlib.util.find_spec("efficientnet_pytorch") is None:
            stubs["efficientnet_pytorch"] = types.ModuleType("efficientnet_pytorch")
            stubs["efficientnet_pytorch"].EfficientNet = None  # type: ignore[attr-defined]
        with _official_scope(code_dir, argv, tmp_dir, stubs=stubs) as patch:
            import_patch = _Patcher()
            try:
                import_patch.set(torch, "tensor", _redirect_cuda(torch.tensor))
                argument = importlib.import_module("argument")
                condense = importlib.import_module("condense")
            finally:
                import_patch.restore()
            train = sys.modules["train"]
            if not hasattr(np, "int"):
                patch.set(np, "int", int)
            args = argument.args
            args.n_data = n_data
            args.niter = niter
            args.save_dir = str(tmp_dir)
            n_iter = args.niter * 100 // args.inner_loop

            official_synthesizer = condense.Synthesizer

            class CPUSynthesizer(official_synthesizer):  # type: ignore[misc, valid-type]
                """The official ``Synthesizer`` on the CPU, without evaluation."""

                def __init__(self, *a: Any, **kw: Any) -> None:
                    kw["device"] = "cpu"
                    super().__init__(*a, **kw)

                def test(self, *a: Any, **kw: Any) -> None:
                    return None

            def load_resized_data(args: Any) -> tuple[_PixelDataset, torch.utils.data.DataLoader]:
                normalize = condense.transforms.Normalize(mean=CIFAR10_MEAN, std=CIFAR10_STD)
                val = _PixelDataset(images_pixels[:10], labels[:10], transform=normalize)
                return _PixelDataset(images_pixels, labels), torch.utils.data.DataLoader(val, batch_size=10)

            stamps: list[float] = []
            official_define_model = condense.define_model

            def define_model(*a: Any, **kw: Any) -> nn.Module:
                stamps.append(time.perf_counter())
                if len(stamps) > outer_iterations:
                    raise _StopCondensing
                return official_define_model(*a, **kw)

            patch.set(condense, "load_resized_data", load_resized_data)
            patch.set(condense, "Synthesizer", CPUSynthesizer)
            patch.set(condense, "ClassMemDataLoader", functools.partial(condense.ClassMemDataLoader, device="cpu"))
            patch.set(condense, "diffaug", functools.partial(condense.diffaug, device="cpu"))
            patch.set(condense, "save_img", lambda *a, **kw: None)
            patch.set(condense, "define_model", define_model)
            patch.set(train, "random_indices", functools.partial(train.random_indices, device="cpu"))
            patch.set(torch.Tensor, "cuda", lambda self, *a, **kw: self)
            patch.set(nn.Module, "cuda", lambda self, *a, **kw: self)
            try:
                condense.condense(args, print, device="cpu")
            except _StopCondensing:
                pass
            else:
                stamps.append(time.perf_counter())
            settings = {
                key: getattr(args, key)
                for key in (
                    "net_type", "depth", "norm_type", "width", "match", "metric", "bias", "fc", "lr_img", "mom_img",
                    "factor", "decode_type", "init", "aug_type", "mixup_net", "mix_p", "beta", "batch_real",
                    "batch_syn_max", "n_data", "net_epoch", "inner_loop", "niter", "fix_iter", "lr", "momentum",
                    "weight_decay", "ipc",
                )
            }  # fmt: skip

    per_outer = _durations(stamps)
    if len(per_outer) != outer_iterations:
        raise RuntimeError(f"expected {outer_iterations} timed outer iterations, got {len(per_outer)}")
    return {
        "seconds_per_inner_step": _mean_without_first(per_outer) / inner_loop,
        "seconds_per_inner_step_all": statistics.fmean(per_outer) / inner_loop,
        "outer_iterations": outer_iterations,
        "inner_loop": inner_loop,
        "per_outer": per_outer,
        "settings": {
            "code": "snu-mllab/Efficient-Dataset-Condensation condense.condense()",
            "argv": argv[1:-2],  # without the temporary path
            **settings,
            "n_iter": n_iter,
            "num_real_images": int(images_pixels.shape[0]),
            "device": "cpu",
            "torch_threads": torch.get_num_threads(),
            "mean_over": "outer iterations 2..K divided by inner_loop (first, warm-up, excluded when K > 1)",
            "interval": "from one define_model call to the next (one fresh network + inner_loop inner steps)",
        },
    }


# ---------------------------------------------------------------------------------------------------- CLI


def _subset(images: torch.Tensor, labels: torch.Tensor, per_class: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    if per_class is None:
        return images, labels
    idx = torch.cat([torch.nonzero(labels == c).flatten()[:per_class] for c in range(NUM_CLASSES)])
    return images[idx].contiguous(), labels[idx].contiguous()


def main(argv: list[str] | None = None) -> dict:
    """Command line: load CIFAR-10 with ``lightning_dd``, run the requested drivers, print the results as JSON."""
    from lightning_dd.data import RealDataModule

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vico", help="extracted VICO-UoE/DatasetCondensation")
    parser.add_argument("--idc", help="extracted snu-mllab/Efficient-Dataset-Condensation")
    parser.add_argument("--root", required=True, help="CIFAR-10 root for RealDataModule('cifar10', root=...)")
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=2, help="DSA --Iteration")
    parser.add_argument("--batch-real", type=int, default=None, help="DSA --batch_real (default 256) and IDC (64)")
    parser.add_argument("--method", default="DSA")
    parser.add_argument("--strategy", default="color_crop_cutout_flip_scale_rotate")
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--inner-loop", type=int, default=100, help="IDC --inner_loop")
    parser.add_argument("--outer-iterations", type=int, default=2)
    parser.add_argument("--n-data", type=int, default=2000)
    parser.add_argument("--per-class", type=int, default=None, help="use only the first K train images per class")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave as is)")
    parser.add_argument("--only", choices=("dsa", "idc"), default=None)
    opts = parser.parse_args(argv)
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)

    data = RealDataModule("cifar10", root=opts.root)
    store = data.load_train()
    images_u8, labels = _subset(store.images, store.labels.long(), opts.per_class)
    results: dict[str, Any] = {"num_images": int(images_u8.shape[0]), "torch_threads": torch.get_num_threads()}
    with contextlib.redirect_stdout(sys.stderr):  # the official prints go to stderr; stdout carries only the JSON
        if opts.vico and opts.only in (None, "dsa"):
            results["dsa"] = time_official_dsa(
                opts.vico,
                data.normalize(images_u8),
                labels,
                ipc=opts.ipc,
                batch_real=opts.batch_real or 256,
                iterations=opts.iterations,
                method=opts.method,
                strategy=opts.strategy,
            )
        if opts.idc and opts.only in (None, "idc"):
            results["idc"] = time_official_idc(
                opts.idc,
                images_u8.float() / 255,
                labels,
                ipc=opts.ipc,
                factor=opts.factor,
                inner_loop=opts.inner_loop,
                outer_iterations=opts.outer_iterations,
                n_data=opts.n_data,
                batch_real=opts.batch_real or 64,
            )
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
