"""Seconds per iteration of DSA and IDC: ours (per-class loop and batched path) and the official code, in one run.

Settings, the same on every side: CIFAR-10, IPC ``--ipc`` (default 10), CPU, ``--threads`` torch threads.

* DSA (VICO-UoE/DatasetCondensation ``main.py --method DSA``): ConvNet-3, ``get_loops(ipc)`` outer x inner loops,
  ``--batch_real`` real images per class per outer step, SGD lr 0.1 momentum 0.5, siamese DSA
  ``color_crop_cutout_flip_scale_rotate``, inner training SGD lr 0.01 batch 256 with DSA.
* IDC (snu-mllab/Efficient-Dataset-Condensation ``condense.py --reproduce -d cifar10 -f 2``): one iteration = one
  inner step of the reference (per-class image steps on 64 real images per class, then the network on ``--n_data``
  real images with CutMix); the official per-inner-step time is its outer iteration's time / ``--inner_loop``.

Ours run through ``lightning.Trainer.fit`` (no logger, progress bar or checkpointing); an iteration is timed from
``on_train_batch_start`` to ``on_train_batch_end``, after ``--warmup`` untimed ones. The official code runs unchanged
through ``benchmarks/official_drivers.py`` (extract the mirrors as its docstring says; nothing is vendored). Prints a
table with the ratios to the official code and writes ``--json``.

    python benchmarks/gradient_matching_vs_official.py --root ~/.cache/lightning_dd/data/cifar10 \\
        --vico /tmp/official/vico --idc /tmp/official/idc --json /tmp/gm_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

import lightning as L
import torch
from _timing import IterationTimer
from official_drivers import time_official_dsa, time_official_idc

from lightning_dd.data import RealDataModule
from lightning_dd.methods import DSA, IDC


def time_ours(model: L.LightningModule, data: RealDataModule, iterations: int, warmup: int) -> list[float]:
    timer = IterationTimer()
    steps = (iterations + warmup) * int(getattr(model, "image_steps_per_iteration", 1))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                        callbacks=[timer])
    trainer.fit(model, data)
    return timer.seconds[warmup:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--vico", help="extracted VICO-UoE/DatasetCondensation (omit to skip the official DSA)")
    parser.add_argument("--idc", help="extracted snu-mllab/Efficient-Dataset-Condensation (omit to skip)")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--batch_real", type=int, default=64, help="DSA real images per class per outer step")
    parser.add_argument("--dsa_iterations", type=int, default=1)
    parser.add_argument("--idc_iterations", type=int, default=5)
    parser.add_argument("--inner_loop", type=int, default=5, help="IDC inner steps per official outer iteration")
    parser.add_argument("--n_data", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=("dsa", "idc"), default=None)
    parser.add_argument("--json", default=None)
    opts = parser.parse_args()
    torch.set_num_threads(opts.threads)
    results: dict[str, Any] = {"settings": vars(opts), "torch": torch.__version__}
    base = {"ipc": opts.ipc, "num_classes": 10, "image_shape": (3, 32, 32), "artifact_path": ""}

    def report(name: str, seconds: list[float]) -> None:
        results[name] = {"seconds_per_iteration": statistics.fmean(seconds), "per_iteration": seconds}
        print(f"{name:<18} {statistics.fmean(seconds):9.2f} s/iteration  {[round(s, 2) for s in seconds]}",
              flush=True)

    if opts.only in (None, "dsa"):
        for batched in (False, True):
            data = RealDataModule("cifar10", root=opts.root, batch_real=opts.batch_real)
            model = DSA(batched_classes=batched, **base)
            report(f"ours DSA {'batched' if batched else 'loop'}", time_ours(model, data, opts.dsa_iterations,
                                                                            opts.warmup))
        if opts.vico:
            data = RealDataModule("cifar10", root=opts.root)
            store = data.load_train()
            out = time_official_dsa(opts.vico, data.normalize(store.images), store.labels, ipc=opts.ipc,
                                    batch_real=opts.batch_real, iterations=opts.dsa_iterations)
            report("official DSA", out["per_iteration"][1:] or out["per_iteration"])
            results["official DSA"]["driver"] = out
    if opts.only in (None, "idc"):
        for batched in (False, True):
            data = RealDataModule("cifar10", root=opts.root, batch_real=64, space="pixels")
            model = IDC(batched_classes=batched, n_data=opts.n_data, inner_loop=100, **base)
            report(f"ours IDC {'batched' if batched else 'loop'}", time_ours(model, data, opts.idc_iterations,
                                                                            max(opts.warmup, 1)))
        if opts.idc:
            data = RealDataModule("cifar10", root=opts.root)
            store = data.load_train()
            out = time_official_idc(opts.idc, store.images.float() / 255, store.labels, ipc=opts.ipc, factor=2,
                                    inner_loop=opts.inner_loop, outer_iterations=2, n_data=opts.n_data, batch_real=64)
            per_step = [s / opts.inner_loop for s in out["per_outer"]]
            report("official IDC", per_step[1:] or per_step)
            results["official IDC"]["driver"] = out
    for method in ("DSA", "IDC"):
        official = results.get(f"official {method}")
        for path in ("loop", "batched"):
            ours = results.get(f"ours {method} {path}")
            if ours and official:
                ratio = ours["seconds_per_iteration"] / official["seconds_per_iteration"]
                ours["ratio_to_official"] = ratio
                print(f"{method} {path} / official: {ratio:.2f}")
        loop, batched = results.get(f"ours {method} loop"), results.get(f"ours {method} batched")
        if loop and batched:
            print(f"{method} batched / loop: {batched['seconds_per_iteration'] / loop['seconds_per_iteration']:.2f}")
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
