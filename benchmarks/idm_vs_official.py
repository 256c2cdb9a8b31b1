"""Seconds per IDM iteration: ours (batched and per-class real side) vs the official ``IDM_cifar10.py``, in one run.

Settings, the same on every side (defaults: the command.txt CIFAR-10 IPC 10 cell, ``configs/overrides/idm/
cifar10_ipc10.yaml``, at the reduced real batch of ``benchmarks/compare_cifar10.py``): CIFAR-10, ``--ipc 10``,
``--batch-real 64`` real images per class per class step, 2x2 partition (4 x ipc images per class), ConvNet-3,
SGD lr_img 0.2 momentum 0.5, siamese DSA ``color_crop_cutout_flip_scale_rotate``, ``ce_weight`` 0.5 x the net's
running accuracy, one matched queue network per iteration, 2 queue networks trained 10 SGD steps of 256 real images
each (lr 0.01, momentum 0.9, weight decay 5e-4), a new network every 30 iterations, CPU, ``--threads`` threads.

* ours: :class:`~lightning_dd.methods.IDM` through ``lightning.Trainer.fit`` (no logger, progress bar, checkpointing or
  model summary); an iteration is one loop cycle, from one ``on_train_batch_end`` to the next (the real batch's fetch
  and Lightning's hooks included; the JSON also holds the step alone), after ``--warmup`` untimed iterations;
* official: ``IDM_cifar10.py``'s ``main()`` run unchanged (nothing of it is vendored: extract the mirror and pass
  ``--idm``) with ``sys.argv`` as its command.txt line plus ``--Iteration N --eval_interval N+1 --num_exp 1`` (no
  evaluation inside the timed loop). Replaced in its module namespace only: ``get_dataset_mtt`` (our normalised
  tensors, CIFAR-10 metadata, a 10-image test set) and ``random`` (the module, wrapped so that the first of the two
  ``random.shuffle`` calls of every iteration time-stamps it). ``torchnet`` (its ``ClassErrorMeter``) and ``kornia``
  (only for the replaced loader's ZCA) are stand-ins when not installed; ``torch.cuda`` reports no GPU while it runs.
  The loop runs ``it = 0 .. N``; ``it = 0`` (warm-up) is excluded.

With ``--pool`` (a proxy pool file) two more contenders time IDM + IID (λ_CC 0.01, λ_CM 0.03) and IDM + CMI (per
class, λ 800): the shipped CIFAR-10 IPC-10 cells' regularizers on that pool.

``--rounds`` rounds, each running every contender for ``--iterations`` timed iterations, the order reversed every other
round. Prints per contender the mean s/iteration and the per-round means, ours / official (overall and the median of
the per-round ratios); writes ``--json``.

    mkdir -p /tmp/official/idm && git -C /work/.mirror/uitrbn+IDM/repo archive HEAD | tar -x -C /tmp/official/idm
    python benchmarks/idm_vs_official.py --root ~/.cache/lightning_dd/data/cifar10 --idm /tmp/official/idm \\
        --iterations 4 --rounds 2 --json /tmp/idm_vs_official.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import lightning as L
import torch
from _timing import CycleTimer
from official_drivers import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, NUM_CLASSES, _check_inputs, _official_scope
from official_mtt import _global_rng_restored, _kornia_stub, _missing

from lightning_dd.data import RealDataModule
from lightning_dd.methods import IDM
from lightning_dd.regularizers import CMIRegularizer, IIDRegularizer, Regularizer

# ---------------------------------------------------------------------------------------------------- official side


def _torchnet_stub() -> types.ModuleType:
    """``torchnet.meter.ClassErrorMeter(accuracy=True)`` as IDM uses it: ``add(logits, targets)``, ``n`` (samples
    seen), ``value()[0]`` (top-1 accuracy in percent), ``reset()``."""

    class ClassErrorMeter:
        def __init__(self, accuracy: bool = False, **kwargs: Any) -> None:
            self.accuracy = accuracy
            self.reset()

        def reset(self) -> None:
            self.n, self.correct = 0, 0

        def add(self, output: torch.Tensor, target: torch.Tensor) -> None:
            self.correct += int((output.argmax(1) == target).sum())
            self.n += int(target.numel())

        def value(self) -> list[float]:
            acc = 100.0 * self.correct / max(1, self.n)
            return [acc if self.accuracy else 100.0 - acc]

    torchnet = types.ModuleType("torchnet")
    torchnet.meter = types.SimpleNamespace(ClassErrorMeter=ClassErrorMeter)  # type: ignore[attr-defined]
    return torchnet


class _StampingRandom:
    """The ``random`` module, except that every other ``shuffle`` call (the first of each iteration) time-stamps."""

    def __init__(self, stamps: list[float]) -> None:
        self._stamps = stamps
        self._calls = 0

    def shuffle(self, x: list[Any]) -> None:
        if self._calls % 2 == 0:
            self._stamps.append(time.perf_counter())
        self._calls += 1
        random.shuffle(x)

    def __getattr__(self, name: str) -> Any:
        return getattr(random, name)


def time_official_idm(idm_dir: str, images: torch.Tensor, labels: torch.Tensor, *, ipc: int, batch_real: int,
                      iterations: int, ce_weight: float = 0.5, seed: int = 0) -> dict[str, Any]:
    """Run the official ``IDM_cifar10.py`` ``main()`` for ``iterations`` (+ the ``it = 0`` warm-up) on ``images``
    (``float32 (N, 3, 32, 32)``, normalised with the CIFAR-10 mean/std) and time each iteration."""
    _check_inputs(images, labels)
    code_dir = Path(idm_dir).resolve()
    if not (code_dir / "IDM_cifar10.py").is_file():
        raise FileNotFoundError(f"{code_dir}/IDM_cifar10.py not found (extract uitrbn/IDM there)")
    stamps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="official_idm_") as tmp:
        tmp_dir = Path(tmp)
        argv = [
            "IDM_cifar10.py", "--dataset", "CIFAR10", "--model", "ConvNet", "--ipc", str(ipc),
            "--dsa_strategy", "color_crop_cutout_flip_scale_rotate", "--init", "real", "--lr_img", "0.2",
            "--num_exp", "1", "--num_eval", "1", "--net_train_real", "--eval_interval", str(iterations + 1),
            "--outer_loop", "1", "--mismatch_lambda", "0", "--net_decay", "--embed_last", "1000", "--syn_ce",
            "--ce_weight", repr(float(ce_weight)), "--train_net_num", "1", "--aug", "--batch_real", str(batch_real),
            "--Iteration", str(iterations),
            "--data_path", str(tmp_dir / "data"), "--save_path", str(tmp_dir / "result"),
        ]  # fmt: skip
        stubs = {}
        if _missing("torchnet"):
            stubs["torchnet"] = _torchnet_stub()
        if _missing("kornia"):
            stubs["kornia"] = _kornia_stub()
        with _official_scope(code_dir, argv, tmp_dir, stubs=stubs) as patch, _global_rng_restored():
            idm = importlib.import_module("IDM_cifar10")

            def get_dataset(dataset: str, data_path: str, *args: Any, **kwargs: Any) -> tuple:
                dst_train = torch.utils.data.TensorDataset(images, labels)
                dst_test = torch.utils.data.TensorDataset(images[:10], labels[:10])
                testloader = torch.utils.data.DataLoader(dst_test, batch_size=256, shuffle=False, num_workers=0)
                class_map = {x: x for x in range(NUM_CLASSES)}
                return (3, (32, 32), NUM_CLASSES, list(CIFAR10_CLASSES), list(CIFAR10_MEAN), list(CIFAR10_STD),
                        dst_train, dst_test, testloader, None, class_map, class_map)  # fmt: skip

            patch.set(idm, "get_dataset_mtt", get_dataset)
            patch.set(idm, "random", _StampingRandom(stamps))
            patch.set(torch.cuda, "is_available", lambda: False)
            patch.set(torch.cuda, "device_count", lambda: 0)
            random.seed(seed)
            torch.manual_seed(seed)
            idm.main()
            stamps.append(time.perf_counter())
    per_iteration = [b - a for a, b in itertools.pairwise(stamps)]
    if len(per_iteration) != iterations + 1:
        raise RuntimeError(f"expected {iterations + 1} timed iterations, got {len(per_iteration)}")
    return {"per_iteration": per_iteration, "argv": argv[1:-4]}


# ---------------------------------------------------------------------------------------------------- ours


def regularizers(name: str, pool: str | None) -> list[Regularizer]:
    """The regularizers of contender ``name`` ("ours + IID", "ours + CMI"; none otherwise)."""
    if name.endswith("IID"):
        return [IIDRegularizer(str(pool), weight_cc=0.01, weight_cm=0.03)]
    if name.endswith("CMI"):
        return [CMIRegularizer(str(pool), weight=800.0, reduction="per_class")]
    return []


def time_ours(opts: argparse.Namespace, name: str, seed: int, root: Path) -> tuple[list[float], list[float]]:
    data = RealDataModule("cifar10", root=opts.root, batch_real=opts.batch_real)
    model = IDM(ipc=opts.ipc, num_classes=NUM_CLASSES, image_shape=(3, 32, 32), artifact_path="", seed=seed,
                ce_weight=opts.ce_weight, batched_real=not name.endswith("loop"),
                regularizers=regularizers(name, opts.pool))
    timer = CycleTimer()
    steps = (opts.warmup + opts.iterations) * model.image_steps_per_iteration
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                        callbacks=[timer], default_root_dir=str(root))
    trainer.fit(model, data)
    return timer.cycles[max(0, opts.warmup - 1):], timer.seconds[opts.warmup:]


# ---------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="CIFAR-10 root (RealDataModule('cifar10', root=...))")
    parser.add_argument("--idm", help="extracted uitrbn/IDM (omit to time ours only)")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--batch-real", type=int, default=64)
    parser.add_argument("--ce-weight", type=float, default=0.5)
    parser.add_argument("--iterations", type=int, default=4, help="timed iterations per contender and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first iterations of ours (official: it=0)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pool", default=None, help="proxy pool: also time IDM + IID and IDM + CMI")
    parser.add_argument("--json", default=None)
    opts = parser.parse_args(argv)
    torch.set_num_threads(opts.threads)
    contenders = ["ours batched", "ours loop"] + (["ours + IID", "ours + CMI"] if opts.pool else [])
    contenders += ["official"] if opts.idm else []
    results: dict[str, Any] = {"settings": vars(opts), "torch": torch.__version__,
                               "contenders": {name: {"rounds": []} for name in contenders}}
    official_images = None
    if opts.idm:
        real = RealDataModule("cifar10", root=opts.root)
        store = real.load_train()
        official_images, official_labels = real.normalize(store.images), store.labels
    with tempfile.TemporaryDirectory(prefix="idm_vs_official_") as tmp:
        for r in range(opts.rounds):
            for name in contenders if r % 2 == 0 else contenders[::-1]:
                with contextlib.redirect_stdout(sys.stderr):
                    if name == "official":
                        assert official_images is not None
                        out = time_official_idm(opts.idm, official_images, official_labels, ipc=opts.ipc,
                                                batch_real=opts.batch_real, iterations=opts.iterations,
                                                ce_weight=opts.ce_weight, seed=r)
                        seconds, extra = out["per_iteration"][1:], {"warmup_seconds": out["per_iteration"][0]}
                        results["contenders"][name]["argv"] = out["argv"]
                    else:
                        seconds, steps = time_ours(opts, name, r, Path(tmp) / f"{name.replace(' ', '_')}_{r}")
                        extra = {"step_seconds": steps}
                results["contenders"][name]["rounds"].append({"per_iteration": seconds, **extra})
                print(f"round {r + 1}/{opts.rounds} {name:<14} {statistics.fmean(seconds):8.3f} s/iteration  "
                      f"{[round(s, 3) for s in seconds]}", flush=True)
    print("\n| contender | s/iteration | per round | ours / official | paired (median of rounds) |")
    print("|---|---:|---|---:|---:|")
    per_round = {n: [statistics.fmean(rd["per_iteration"]) for rd in results["contenders"][n]["rounds"]]
                 for n in contenders}
    mean = {n: statistics.fmean(s for rd in results["contenders"][n]["rounds"] for s in rd["per_iteration"])
            for n in contenders}
    for name in contenders:
        row = results["contenders"][name]
        row.update(seconds_per_iteration=mean[name], per_round=per_round[name])
        ratio = paired = "-"
        if "official" in mean and name != "official":
            row["ratio_to_official"] = mean[name] / mean["official"]
            row["paired_ratio_to_official"] = statistics.median(
                a / b for a, b in zip(per_round[name], per_round["official"], strict=True))
            ratio, paired = f"{row['ratio_to_official']:.2f}", f"{row['paired_ratio_to_official']:.2f}"
        print(f"| {name} | {mean[name]:.3f} | {[round(s, 3) for s in per_round[name]]} | {ratio} | {paired} |")
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
