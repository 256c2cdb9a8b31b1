"""Time one DM iteration of the official code (VICO-UoE/DatasetCondensation ``main_DM.py``) and of ours, in one run.

Settings (both sides): CIFAR-10, IPC 10, 256 real images per class, DSA ``color_crop_cutout_flip_scale_rotate``,
ConvNet-3 (width 128, instance norm, ReLU, average pooling), a fresh random frozen network every iteration, SGD
(lr 1, momentum 0.5) on the synthetic images, CPU.

Contenders, each in its own subprocess (so allocator state, threads and page faults are its own):

* ``official``: the per-iteration body of ``main_DM.py`` (ConvNet branch) *calling* the official
  ``utils.get_network`` / ``utils.DiffAugment`` / ``utils.ParamDiffAug`` imported from ``--official`` (a folder holding
  the repository's ``utils.py`` and ``networks.py``; nothing of it is copied here): new network, parameters frozen,
  per class 256 real images (``images_all[np.random.permutation(indices_class[c])[:256]]`` on the normalised float
  train set held in memory, as ``main_DM.py`` does) and the class's IPC synthetic images, same-seed DSA on both,
  ``embed``, squared distance of the means summed over classes, one optimizer step, ``loss.item()``.
* ``current``: ``lightning.Trainer(max_steps=N).fit(lightning_dd.methods.DM, RealDataModule("cifar10", ...))`` with the
  ``lightning_dd`` of the checkout holding this script; no logger, progress bar, checkpointing or model summary.
* one more per ``--ours-path PATH``: the same fit with ``PATH`` first on ``sys.path`` (another checkout / worktree of
  the package, e.g. the code before a refactor), named after the folder.

Per contender and round, one warm-up iteration (excluded) then ``--iterations`` timed ones. Rounds alternate the
contenders (the order is reversed every other round) so machine drift hits all of them alike; compare the ratios,
not the absolute times. Per iteration the child records wall time, user and system CPU seconds and minor page
faults (``resource.getrusage``); for ours the wall time is measured from one ``on_train_batch_end`` to the next (a
whole loop cycle: batch sampling, normalisation, ``training_step``, Lightning's hooks), with ``step`` =
``on_train_batch_start`` -> ``on_train_batch_end`` and ``fit`` = (fit wall time - time to ``on_train_start``) /
steps also printed. Threads: ``--threads`` (default 1) via ``torch.set_num_threads`` and ``OMP_NUM_THREADS`` /
``MKL_NUM_THREADS`` of the child. Environment variables (e.g. ``MALLOC_MMAP_THRESHOLD_``) pass through to the children.

Offline: the official code is read from ``--official``, the images from ``--root`` (CIFAR-10 as image folders,
``<root>/cifar10/train/<class>/*.jpg``, decoded once into lightning_dd's tensor cache). Usage::

    git --git-dir=<mirror of VICO-UoE/DatasetCondensation> show HEAD:utils.py > /tmp/official/utils.py  # + networks.py
    python benchmarks/dm_iteration_vs_official.py --official /tmp/official --root /tmp/ddata \\
        --iterations 3 --rounds 3 [--threads 1] [--ours-path /work/before ...]

Prints, per contender, the median s/iteration (all timed iterations of all rounds), the per-round medians, the median
user / system CPU seconds and minor faults per iteration, the peak RSS of the child (``ru_maxrss``, data loading
included) and its RSS after the last iteration, then each contender relative to the official one: wall time, wall
time paired per round, and CPU seconds (user + system; the least sensitive to other load on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MARK = "@@RESULT@@ "
REPO = Path(__file__).resolve().parent.parent
NUM_CLASSES, IPC, CHANNELS, SIZE = 10, 10, 3, (32, 32)
STRATEGY = "color_crop_cutout_flip_scale_rotate"


# ------------------------------------------------------------------------------------------------ measurement


def snapshot() -> dict[str, float]:
    """Wall clock, CPU seconds and page faults of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": time.perf_counter(), "user": r.ru_utime, "sys": r.ru_stime, "minflt": r.ru_minflt,
            "majflt": r.ru_majflt}


def delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: b[k] - a[k] for k in a}


def rss_mb() -> float:
    """Current resident set size (MiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(payload: dict[str, Any]) -> None:
    print(MARK + json.dumps(payload), flush=True)


# ------------------------------------------------------------------------------------------------ children


def load_store(root: str, batch_real: int):
    """The CIFAR-10 train split as lightning_dd's uint8 class-indexed store (shared by both contenders' data)."""
    from lightning_dd.data import RealDataModule

    data = RealDataModule("cifar10", root=root, batch_real=batch_real)
    # RealDataModule.load_train() in the current API; the `store` property loaded the split in earlier versions
    store = data.load_train() if hasattr(data, "load_train") else data.store
    return data, store


def child_official(args: argparse.Namespace) -> None:
    """main_DM.py's per-iteration body (ConvNet branch), calling the official code."""
    import numpy as np
    import torch

    sys.path.insert(0, str(REPO))  # lightning_dd of this checkout, for reading the images only
    sys.path.insert(0, str(Path(args.official).resolve()))
    import utils as official  # the official utils.py (imports the official networks.py)

    torch.set_num_threads(args.threads)
    device = "cpu"
    data, store = load_store(args.root, args.batch_real)
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    # main_DM.py holds the whole normalised float train set in memory (ToTensor + Normalize, then torch.cat)
    images_all = ((store.images.float() / 255.0 - mean) / std).contiguous()
    indices_class = [idx.tolist() for idx in store.indices_by_class]
    del data, store

    def get_images(c: int, n: int) -> torch.Tensor:  # main_DM.py get_images
        idx_shuffle = np.random.permutation(indices_class[c])[:n]
        return images_all[idx_shuffle]

    dsa_param = official.ParamDiffAug()
    image_syn = torch.randn(size=(NUM_CLASSES * IPC, CHANNELS, *SIZE), dtype=torch.float, requires_grad=True)
    for c in range(NUM_CLASSES):
        image_syn.data[c * IPC:(c + 1) * IPC] = get_images(c, IPC).detach().data
    optimizer_img = torch.optim.SGD([image_syn], lr=1.0, momentum=0.5)
    optimizer_img.zero_grad()

    def iteration() -> float:
        net = official.get_network("ConvNet", CHANNELS, NUM_CLASSES, SIZE).to(device)
        net.train()
        for param in list(net.parameters()):
            param.requires_grad = False
        embed = net.embed
        loss = torch.tensor(0.0).to(device)
        for c in range(NUM_CLASSES):
            img_real = get_images(c, args.batch_real)
            img_syn = image_syn[c * IPC:(c + 1) * IPC].reshape((IPC, CHANNELS, *SIZE))
            seed = int(time.time() * 1000) % 100000
            img_real = official.DiffAugment(img_real, STRATEGY, seed=seed, param=dsa_param)
            img_syn = official.DiffAugment(img_syn, STRATEGY, seed=seed, param=dsa_param)
            output_real = embed(img_real).detach()
            output_syn = embed(img_syn)
            loss += torch.sum((torch.mean(output_real, dim=0) - torch.mean(output_syn, dim=0)) ** 2)
        optimizer_img.zero_grad()
        loss.backward()
        optimizer_img.step()
        return loss.item()

    samples = []
    for i in range(args.iterations + 1):
        start = snapshot()
        loss = iteration()
        d = delta(start, snapshot())
        if i > 0:  # iteration 0 is the warm-up
            samples.append(d)
    report({"samples": samples, "rss_mb": rss_mb(), "peak_rss_mb": peak_rss_mb(), "loss": loss,
            "module": official.__file__})


def child_ours(args: argparse.Namespace) -> None:
    """A real Trainer.fit of lightning_dd's DM, timed per iteration by a callback."""
    sys.path.insert(0, str(Path(args.child_path or REPO).resolve()))
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback

    import lightning_dd
    from lightning_dd.data import RealDataModule
    from lightning_dd.methods import DM

    torch.set_num_threads(args.threads)
    steps = args.iterations + 1

    class IterationTimer(Callback):
        def __init__(self) -> None:
            self.cycles: list[dict[str, float]] = []
            self.steps: list[float] = []
            self.logged: list[float] = []
            self.mark: dict[str, float] = {}
            self.step_start = 0.0
            self.train_start = 0.0

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.mark = snapshot()
            self.train_start = self.mark["wall"]

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            self.step_start = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            now = snapshot()
            self.cycles.append(delta(self.mark, now))
            self.steps.append(now["wall"] - self.step_start)
            value = trainer.callback_metrics.get("train/iteration_seconds")
            self.logged.append(float(value) if value is not None else float("nan"))
            self.mark = now

    timer = IterationTimer()
    data = RealDataModule("cifar10", root=args.root, batch_real=args.batch_real, iterations_per_epoch=steps)
    model = DM(ipc=IPC, num_classes=NUM_CLASSES, image_shape=(CHANNELS, *SIZE), network="convnet",
               dsa_strategy=STRATEGY, seed=0, artifact_path="",
               optimizer=lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.5))
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, use_distributed_sampler=False, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=args.workdir, callbacks=[timer])
    fit_start = time.perf_counter()
    trainer.fit(model, data)
    fit_end = time.perf_counter()
    if len(timer.cycles) != steps:
        raise RuntimeError(f"expected {steps} iterations, timed {len(timer.cycles)}")
    report({"samples": timer.cycles[1:], "step_s": timer.steps[1:], "logged_s": timer.logged[1:],
            "fit_s_per_it": (fit_end - timer.train_start) / steps, "setup_s": timer.train_start - fit_start,
            "rss_mb": rss_mb(), "peak_rss_mb": peak_rss_mb(), "module": lightning_dd.__file__,
            "chunk_size": model.chunk_size})


# ------------------------------------------------------------------------------------------------ parent


def run_child(name: str, ours_path: str | None, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "official" if name == "official" else "ours",
           "--official", args.official, "--root", args.root, "--iterations", str(args.iterations),
           "--threads", str(args.threads), "--batch-real", str(args.batch_real), "--workdir", args.workdir]
    if ours_path:
        cmd += ["--child-path", ours_path]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               PYTHONWARNINGS="ignore")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=args.workdir)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{name} child failed (exit {proc.returncode}):\n{err[-4000:]}")
    lines = [line for line in out.splitlines() if line.startswith(MARK)]
    if not lines:
        raise RuntimeError(f"{name} child printed no result:\n{out[-2000:]}\n{err[-2000:]}")
    return json.loads(lines[-1][len(MARK):])


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, help="folder with the official utils.py and networks.py")
    parser.add_argument("--root", required=True, help="data root holding cifar10/train/<class>/*.jpg")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations per contender and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--ours-path", action="extend", default=[], nargs="+",
                        help="other lightning_dd checkouts to time as well (each put first on sys.path)")
    parser.add_argument("--child-path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help="scratch folder of the children (default: a temporary one)")
    parser.add_argument("--child", choices=["official", "ours"], default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        (child_official if args.child == "official" else child_ours)(args)
        return
    if not (Path(args.official) / "utils.py").is_file() or not (Path(args.official) / "networks.py").is_file():
        parser.error(f"--official {args.official}: utils.py and networks.py of VICO-UoE/DatasetCondensation needed")
    import tempfile

    if args.workdir is None:
        args.workdir = tempfile.mkdtemp(prefix="dm_vs_official_")
    contenders: list[tuple[str, str | None]] = [("official", None), ("current", None)]
    for path in args.ours_path:
        name = Path(path).resolve().name or path
        while name in dict(contenders):
            name += "'"
        contenders.append((name, path))
    print(f"threads={args.threads} iterations={args.iterations} rounds={args.rounds} batch_real={args.batch_real} "
          f"ipc={IPC} strategy={STRATEGY}")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in contenders}
    for r in range(args.rounds):
        order = contenders if r % 2 == 0 else contenders[::-1]
        for name, path in order:
            res = run_child(name, path, args)
            results[name].append(res)
            times = [s["wall"] for s in res["samples"]]
            print(f"  round {r + 1} {name:>10}: {' '.join(f'{t:.3f}' for t in times)} s  ({res['module']})",
                  flush=True)

    print()
    header = (f"{'contender':>10} {'s/it':>7} {'per-round medians':>24} {'user/it':>8} {'sys/it':>7} {'cpu/it':>7} "
              f"{'minflt/it':>10} {'peakRSS':>8} {'RSS end':>8} {'step s':>7} {'fit s/it':>8}")
    print(header)
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    round_wall: dict[str, list[float]] = {}
    for name, _ in contenders:
        runs = results[name]
        samples = [s for res in runs for s in res["samples"]]
        wall[name] = med([s["wall"] for s in samples])
        cpu[name] = med([s["user"] + s["sys"] for s in samples])
        round_wall[name] = [med([s["wall"] for s in res["samples"]]) for res in runs]
        rounds = " ".join(f"{t:.3f}" for t in round_wall[name])
        step = med([t for res in runs for t in res.get("step_s", [])])
        fit = med([res["fit_s_per_it"] for res in runs if "fit_s_per_it" in res])
        print(f"{name:>10} {wall[name]:7.3f} {rounds:>24} {med([s['user'] for s in samples]):8.3f} "
              f"{med([s['sys'] for s in samples]):7.3f} {cpu[name]:7.3f} {med([s['minflt'] for s in samples]):10.0f} "
              f"{max(res['peak_rss_mb'] for res in runs):7.0f}M {med([res['rss_mb'] for res in runs]):7.0f}M "
              f"{step:7.3f} {fit:8.3f}")
    print()
    print("ratios to official: wall (medians of all iterations) | wall (median over rounds of the per-round ratio, "
          "robust to load drifting between rounds) | CPU seconds user+sys (robust to other processes)")
    for name, _ in contenders:
        if name != "official":
            paired = med([a / b for a, b in zip(round_wall[name], round_wall["official"], strict=True)])
            print(f"{name + '/official':>20} = {wall[name] / wall['official']:.3f} | {paired:.3f} | "
                  f"{cpu[name] / cpu['official']:.3f}")

if __name__ == "__main__":
    main()
