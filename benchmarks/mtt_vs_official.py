"""Seconds per MTT iteration: ours (``plain`` and ``constant_memory`` unroll) vs the official ``distill.py``, one run.

Settings, the same on every side (defaults: the author table's CIFAR-10 IPC 1 cell, ``configs/overrides/mtt/
cifar10_ipc1.yaml``): CIFAR-10, ``--ipc 1``, ``--syn-steps 50``, ``--expert-epochs 2``, ``--max-start-epoch 2``,
``--lr-img 100`` (SGD momentum 0.5), ``--lr-lr 1e-7``, ``--lr-teacher 0.01``, ``batch_syn`` = all images
(``--batch-syn`` to change), ZCA (``--no-zca`` for the normalized space), ConvNet-3, ``init real``, DSA
``color_crop_cutout_flip_scale_rotate`` per student step, CPU, ``--threads`` torch threads.

Data: the CIFAR-10 train split (``--per-class K``: its first K images per class, for quick checks; the ZCA is then
fitted on those) through one :class:`~lightning_dd.data.RealDataModule`, whose fitted ZCA also whitens the images
handed to the official code. Experts: ``--experts`` random-walk trajectories (ConvNet-3 init from our network
factory, ``+ 0.01 * randn`` per epoch, ``max_start_epoch + expert_epochs`` epochs), written as our
:class:`~lightning_dd.pretrained.ExpertBuffer` into a temporary folder and, the same tensors, as the official
``replay_buffer_0.pt``: the time of an iteration does not depend on what the experts learned.

* ours: :class:`~lightning_dd.methods.MTT` through ``lightning.Trainer.fit`` (CPU, no logger, progress bar,
  checkpointing or model summary; ``lr_guard="clamp"`` so a random-walk expert cannot stop a long run), timed from
  ``on_train_batch_start`` to ``on_train_batch_end`` after ``--warmup`` untimed iterations (the JSON also holds
  ``cycles``: from one ``on_train_batch_end`` to the next, the (empty) batch fetch and Lightning's loop included);
* official: ``distill.py`` run unchanged by :func:`official_mtt.time_official_mtt` (``--Iteration N``: its
  ``it = 0`` is the warm-up, excluded; each iteration timed from one ``wandb.log({"Progress": it})`` to the next).

``--rounds`` rounds, each running every contender for ``--iterations`` timed iterations, the order reversed every
other round (machine drift hits all alike). Prints per contender the mean s/iteration over all timed iterations and
the per-round means, then ours / official (overall, and the median of the per-round ratios) and constant / plain;
writes ``--json``.

Setup: extract the official code as :mod:`official_mtt`'s docstring says::

    mkdir -p /tmp/official/mtt
    git -C /work/.mirror/GeorgeCazenavette+mtt-distillation/repo archive HEAD \\
        distill.py utils.py networks.py reparam_module.py buffer.py | tar -x -C /tmp/official/mtt

Measurement (about 10 min on 2 busy cores at IPC 1, 50 steps: ~10-15 s per iteration and contender, 2 rounds x 3
contenders x 4 iterations, plus ~2 min for the ZCA fit on 50 000 images and the official data set building)::

    python benchmarks/mtt_vs_official.py --root ~/.cache/lightning_dd/data/cifar10 --mtt /tmp/official/mtt \\
        --ipc 1 --iterations 3 --rounds 2 --threads 2 --json /tmp/mtt_vs_official.json

Quick check::

    python benchmarks/mtt_vs_official.py --root ~/.cache/lightning_dd/data/cifar10 --mtt /tmp/official/mtt \\
        --ipc 1 --syn-steps 3 --iterations 2 --rounds 1 --per-class 20 --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from _timing import CycleTimer
from official_mtt import official_network_parameters, time_official_mtt

from lightning_dd.data import RealDataModule
from lightning_dd.data.types import LabeledImages
from lightning_dd.losses.trajectory import flat_parameters
from lightning_dd.methods import MTT
from lightning_dd.networks import create_network
from lightning_dd.pretrained.experts import ExpertBuffer, expert_path

NUM_CLASSES = 10


class CIFAR10Train(RealDataModule):
    """``RealDataModule("cifar10")`` whose train split is cut to its first ``per_class`` images per class."""

    def __init__(self, root: str, per_class: int | None = None, **kwargs: Any) -> None:
        self.train_per_class = per_class
        super().__init__("cifar10", root=root, **kwargs)

    def read_split(self, train: bool) -> LabeledImages:
        split = super().read_split(train)
        if not train or self.train_per_class is None:
            return split
        idx = torch.cat([torch.nonzero(split.labels == c).flatten()[: self.train_per_class]
                         for c in range(NUM_CLASSES)])
        return dataclasses.replace(split, images=split.images[idx].contiguous(), labels=split.labels[idx].contiguous())


def random_walk_experts(num_experts: int, epochs: int, seed: int) -> list[torch.Tensor]:
    """``num_experts`` ``(epochs + 1, P)`` trajectories: a ConvNet-3 init, then ``+ 0.01 * randn`` per epoch."""
    out = []
    for k in range(num_experts):
        g = torch.Generator().manual_seed(seed * 1000 + k)
        theta = flat_parameters(create_network("convnet", 3, NUM_CLASSES, (32, 32), generator=g))
        rows = [theta]
        for _ in range(epochs):
            rows.append(rows[-1] + 0.01 * torch.randn(theta.shape, generator=g))
        out.append(torch.stack(rows))
    return out


def time_ours(opts: argparse.Namespace, data: RealDataModule, buffer_dir: Path, unroll: str, seed: int,
              root: Path) -> tuple[list[float], list[float]]:
    model = MTT(ipc=opts.ipc, num_classes=NUM_CLASSES, image_shape=(3, 32, 32), artifact_path="", init="real",
                space="zca" if opts.zca else "normalized", seed=seed, expert_buffer=str(buffer_dir),
                syn_steps=opts.syn_steps, expert_epochs=opts.expert_epochs, max_start_epoch=opts.max_start_epoch,
                lr_teacher=opts.lr_teacher, lr_lr=opts.lr_lr, batch_syn=opts.batch_syn, unroll=unroll,
                lr_guard="clamp", optimizer=functools.partial(torch.optim.SGD, lr=opts.lr_img, momentum=0.5))
    timer = CycleTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=opts.warmup + opts.iterations, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        use_distributed_sampler=False, callbacks=[timer], default_root_dir=str(root))
    trainer.fit(model, data)
    return timer.seconds[opts.warmup:], timer.cycles[max(0, opts.warmup - 1):]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="CIFAR-10 root (RealDataModule('cifar10', root=...))")
    parser.add_argument("--mtt", help="extracted GeorgeCazenavette/mtt-distillation (omit to time ours only)")
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--syn-steps", type=int, default=50)
    parser.add_argument("--expert-epochs", type=int, default=2)
    parser.add_argument("--max-start-epoch", type=int, default=2)
    parser.add_argument("--batch-syn", type=int, default=None, help="images per student step (default: all)")
    parser.add_argument("--lr-img", type=float, default=100.0)
    parser.add_argument("--lr-lr", type=float, default=1e-7)
    parser.add_argument("--lr-teacher", type=float, default=0.01)
    parser.add_argument("--no-zca", dest="zca", action="store_false", help="normalized space instead of ZCA")
    parser.add_argument("--experts", type=int, default=2, help="random-walk expert trajectories")
    parser.add_argument("--per-class", type=int, default=None, help="train images per class (default: all 5000)")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per contender and round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first iterations of ours (official: it=0)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=("ours", "official"), default=None)
    parser.add_argument("--json", default=None)
    opts = parser.parse_args(argv)
    torch.set_num_threads(opts.threads)

    data = CIFAR10Train(opts.root, per_class=opts.per_class, space="zca" if opts.zca else "normalized")
    data.setup("fit")  # the train split and (ZCA space) the whitening, once for every contender
    store = data.store
    zca = data.zca
    epochs = opts.max_start_epoch + opts.expert_epochs
    trajectories = random_walk_experts(opts.experts, epochs, seed=0)
    if opts.mtt:  # the trajectories are handed over flat: the official ConvNet must lay its parameters out as ours
        ours_shapes = [tuple(p.shape) for p in create_network("convnet", 3, NUM_CLASSES, (32, 32)).parameters()]
        official_shapes = [tuple(p.shape) for p in official_network_parameters(opts.mtt)]
        if ours_shapes != official_shapes:
            raise RuntimeError(f"official ConvNet parameters {official_shapes} differ from ours {ours_shapes}")
    contenders = []
    if opts.only in (None, "ours"):
        contenders += ["ours plain", "ours constant_memory"]
    if opts.only in (None, "official") and opts.mtt:
        contenders.append("official")
    results: dict[str, Any] = {"settings": vars(opts), "torch": torch.__version__,
                               "torch_threads": torch.get_num_threads(), "num_train_images": len(store.labels),
                               "contenders": {name: {"rounds": []} for name in contenders}}
    with tempfile.TemporaryDirectory(prefix="mtt_vs_official_") as tmp:
        tmp_dir = Path(tmp)
        buffer_dir = tmp_dir / "experts"
        info = {"zca": None if zca is None else zca.fingerprint(), "seed": 0, "epochs": epochs}
        ExpertBuffer(trajectories, "convnet", "cifar10", (3, 32, 32), NUM_CLASSES, data.mean, data.std,
                     space="zca" if opts.zca else "normalized", info=info).save(expert_path(buffer_dir, 0))
        official_images = data.encode(store.images) if "official" in contenders else None
        for r in range(opts.rounds):
            order = contenders if r % 2 == 0 else contenders[::-1]
            for name in order:
                if name == "official":
                    assert official_images is not None
                    with contextlib.redirect_stdout(sys.stderr):
                        out = time_official_mtt(
                            opts.mtt, official_images, store.labels, ipc=opts.ipc, syn_steps=opts.syn_steps,
                            expert_epochs=opts.expert_epochs, max_start_epoch=opts.max_start_epoch,
                            batch_syn=opts.batch_syn, iterations=opts.iterations, trajectories=trajectories,
                            zca=zca, lr_img=opts.lr_img, lr_lr=opts.lr_lr, lr_teacher=opts.lr_teacher, seed=r)
                    seconds = out["per_iteration"][1:]
                    results["contenders"][name]["driver_settings"] = out["settings"]
                    extra = {"losses": out["losses"], "start_epochs": out["start_epochs"],
                             "warmup_seconds": out["per_iteration"][0]}
                else:
                    unroll = name.split()[1]
                    with contextlib.redirect_stdout(sys.stderr):
                        seconds, cycles = time_ours(opts, data, buffer_dir, unroll, seed=r,
                                                    root=tmp_dir / f"{unroll}_{r}")
                    extra = {"cycles": cycles}
                results["contenders"][name]["rounds"].append({"per_iteration": seconds, **extra})
                print(f"round {r + 1}/{opts.rounds} {name:<22} {statistics.fmean(seconds):8.3f} s/iteration  "
                      f"{[round(s, 3) for s in seconds]}", flush=True)

    print()
    print("| contender | s/iteration | per round | ours / official | paired (median of rounds) |")
    print("|---|---:|---|---:|---:|")
    summary: dict[str, Any] = {}
    for name in contenders:
        rounds = results["contenders"][name]["rounds"]
        every = [s for rd in rounds for s in rd["per_iteration"]]
        summary[name] = {"seconds_per_iteration": statistics.fmean(every),
                         "per_round": [statistics.fmean(rd["per_iteration"]) for rd in rounds]}
    official = summary.get("official")
    for name in contenders:
        row = summary[name]
        ratio = paired = None
        if official and name != "official":
            ratio = row["seconds_per_iteration"] / official["seconds_per_iteration"]
            paired = statistics.median(a / b for a, b in zip(row["per_round"], official["per_round"], strict=True))
            row["ratio_to_official"], row["paired_ratio_to_official"] = ratio, paired
        shown = "-" if ratio is None else f"{ratio:.2f}"
        shown_paired = "-" if paired is None else f"{paired:.2f}"
        print(f"| {name} | {row['seconds_per_iteration']:.3f} | {[round(s, 3) for s in row['per_round']]} | "
              f"{shown} | {shown_paired} |")
        results["contenders"][name].update(row)
    if "ours plain" in summary and "ours constant_memory" in summary:
        cm_ratio = (summary["ours constant_memory"]["seconds_per_iteration"]
                    / summary["ours plain"]["seconds_per_iteration"])
        results["constant_memory_over_plain"] = cm_ratio
        print(f"\nconstant_memory / plain: {cm_ratio:.2f}")
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
