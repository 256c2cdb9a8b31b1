"""Peak memory and seconds per iteration of the MTT unroll vs ``syn_steps``: ``plain`` vs ``constant_memory``.

One iteration = the trajectory-matching loss of :mod:`lightning_dd.losses.trajectory` (called directly, no
Lightning) forward + ``backward()`` to the synthetic images and the learned step size, as one MTT iteration
computes it before its optimizer step: ConvNet-3 (``create_network("convnet", 3, 10, (32, 32))``, instance norm) as
the functional student, ``--ipc`` images per class of 10 classes (3x32x32, random normal or the first real CIFAR-10
train images, normalized), ``--batch`` images per student step (chunks of a fresh permutation, as ``MTT.step_plan``),
one DSA op per step with per-image parameters (``DSA('color_crop_cutout_flip_scale_rotate', align_corners=True)``,
``sample(n, generator, shared_op=True, image_size=(32, 32))``), the per-step indices and DSA parameters drawn at the
start of the iteration (inside the timed interval, as MTT draws them) and replayed by the constant-memory backward.
The expert segment is the network's init ``start`` and ``target = start + 0.01 * randn`` (the loss math does not
care what the expert learned). Both modes see the same images, segment and per-step plan (same seeds).

Every measurement (one ``syn_steps`` x one mode) runs in a fresh subprocess (``--worker``), so allocator state and
the peak RSS are its own; per ``syn_steps`` the two modes run one after the other, the order reversed every other
setting (machine drift hits both alike). In the subprocess:

1. setup (network, images, segment) and, on the CPU, ``VmRSS`` read and the kernel's RSS high-water mark reset
   (``/proc/self/clear_refs`` ``5``; if that is refused, ``ru_maxrss`` before the iteration is the baseline);
2. one untimed iteration under ``torch.autograd.graph.saved_tensors_hooks`` that tracks the tensors autograd holds
   for backward (forward graphs, the ``create_graph`` double-backward graphs, ``ctx.save_for_backward``, the
   recomputed graphs of the constant-memory backward): bytes of the unique storages alive at a time, its peak over
   the forward and backward pass = ``saved MiB``. It is also the warm-up;
3. ``--repeats`` timed iterations without hooks (wall seconds, CUDA synchronised); ``s/iter`` is their median;
4. CPU: ``RSS MiB`` = peak RSS (``VmHWM``) during steps 2-3 minus ``VmRSS`` before step 2; CUDA: ``peak MiB`` =
   ``torch.cuda.max_memory_allocated`` (reset before each iteration) minus the allocation before it, max over the
   iterations.

Memory guard (CPU): the worker's address space is capped (``RLIMIT_AS`` = its size after setup + ``--mem-limit-gib``,
default 60% of ``MemAvailable``) so a plain unroll too large for the machine fails with an allocation error (any
``RuntimeError`` under the cap is reported as ``out of memory``; larger ``syn_steps`` of that mode are then skipped)
instead of waking the OOM killer. The plain
unroll keeps every step's graph: about 3 MiB per image per step for ConvNet-3 at 32x32, so ``--batch 100`` needs
roughly 12 GiB at 40 steps and 24 GiB at 80 steps.

Prints a markdown table (``syn_steps``, mode, s/iter, saved MiB, RSS MiB or peak MiB, constant/plain ratios of
time and memory) and writes ``--json``. Usage::

    python benchmarks/mtt_memory.py --steps 5 10 20 40 80 --ipc 10 --batch 100 --repeats 3 --threads 2 \\
        --json /tmp/mtt_memory.json [--device cuda] [--images real --root ~/.cache/lightning_dd/data/cifar10]

Quick check: ``python benchmarks/mtt_memory.py --steps 2 5 --ipc 1 --batch 10 --repeats 1 --threads 1``.
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
MODES = ("plain", "constant_memory")
NUM_CLASSES, CHANNELS, SIZE = 10, 3, (32, 32)
STRATEGY = "color_crop_cutout_flip_scale_rotate"
MIB = 2**20


# ---------------------------------------------------------------------------------------------------- saved tensors


class SavedTensorTracker:
    """Bytes of the unique storages autograd holds for backward, now and at the peak (saved-tensor hooks).

    Each saved tensor is packed into a small holder that counts its storage while it lives; the storage's bytes are
    added when the first holder of that storage appears and removed when the last one is freed (autograd frees the
    holder with the graph node that saved it).
    """

    def __init__(self) -> None:
        self.live: dict[tuple[str, int], list[int]] = {}  # storage -> [nbytes, holders]
        self.current = 0
        self.peak = 0
        self.packed = 0

    def pack(self, tensor: Any) -> _Held:
        return _Held(self, tensor)

    @staticmethod
    def unpack(held: _Held) -> Any:
        return held.tensor

    def add(self, key: tuple[str, int], nbytes: int) -> None:
        self.packed += 1
        entry = self.live.get(key)
        if entry is None:
            self.live[key] = [nbytes, 1]
            self.current += nbytes
            self.peak = max(self.peak, self.current)
        else:
            entry[1] += 1

    def remove(self, key: tuple[str, int]) -> None:
        entry = self.live[key]
        entry[1] -= 1
        if entry[1] == 0:
            del self.live[key]
            self.current -= entry[0]


class _Held:
    __slots__ = ("key", "tensor", "tracker")

    def __init__(self, tracker: SavedTensorTracker, tensor: Any) -> None:
        storage = tensor.untyped_storage()
        self.tracker, self.tensor = tracker, tensor
        self.key = (str(tensor.device), storage.data_ptr())
        tracker.add(self.key, storage.nbytes())

    def __del__(self) -> None:
        self.tracker.remove(self.key)


# ---------------------------------------------------------------------------------------------------- process memory


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark of this process (Linux >= 4.0); False if refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss_kib() -> int:
    hwm = _status_kib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 8.0


# ---------------------------------------------------------------------------------------------------- worker


def worker(opts: argparse.Namespace) -> dict[str, Any]:
    import torch

    from lightning_dd.augment import DSA
    from lightning_dd.losses.trajectory import (
        FlatStudent,
        constant_memory_trajectory_loss,
        unrolled_trajectory_loss,
    )
    from lightning_dd.networks import create_network

    torch.set_num_threads(opts.threads)
    device = torch.device(opts.device)
    cuda = device.type == "cuda"
    n_images = NUM_CLASSES * opts.ipc
    batch_size = min(opts.batch, n_images)
    g = torch.Generator().manual_seed(opts.seed)
    net = create_network("convnet", CHANNELS, NUM_CLASSES, SIZE, generator=g).to(device)
    student = FlatStudent(net)
    start = student.flatten().to(device)
    target = start + 0.01 * torch.randn(start.shape, generator=g).to(device)
    labels = torch.arange(NUM_CLASSES).repeat_interleave(opts.ipc).to(device)
    if opts.images == "real":
        from lightning_dd.data import RealDataModule

        data = RealDataModule("cifar10", root=opts.root)
        store = data.load_train()
        idx = torch.cat([torch.nonzero(store.labels == c).flatten()[: opts.ipc] for c in range(NUM_CLASSES)])
        x0 = data.normalize(store.images[idx])
    else:
        x0 = torch.randn(n_images, CHANNELS, *SIZE, generator=g)
    images = x0.to(device).requires_grad_(True)
    lr = torch.tensor(0.01, device=device, requires_grad=True)
    dsa = DSA(STRATEGY, align_corners=True)
    loss_fn = constant_memory_trajectory_loss if opts.mode == "constant_memory" else unrolled_trajectory_loss
    plan_generator = torch.Generator().manual_seed(opts.seed + 1)

    def iteration() -> float:
        plan = []
        chunks: list[torch.Tensor] = []
        for _ in range(opts.syn_steps):
            if not chunks:
                chunks = list(torch.split(torch.randperm(n_images, generator=plan_generator), batch_size))
            idx = chunks.pop()
            params = dsa.sample(len(idx), plan_generator, shared_op=True, image_size=SIZE)
            plan.append((idx.to(device), params))

        def batch(step: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            idx, params = plan[step]
            return dsa.apply(x[idx], params), labels[idx]

        loss = loss_fn(student, images, lr, start, target, opts.syn_steps, batch)
        loss.backward()
        value = float(loss.detach())
        images.grad = None
        lr.grad = None
        return value

    if cuda:
        torch.cuda.synchronize()
        base_alloc = torch.cuda.memory_allocated()
        rss_before = peak_before = None
        reset = False
    else:
        base_alloc = 0
        rss_before = _status_kib("VmRSS")
        reset = _reset_peak_rss()
        peak_before = _peak_rss_kib()  # == VmRSS when the reset worked, else the process's peak so far
        if opts.mem_limit_gib > 0:
            size = (_status_kib("VmSize") or 0) * 1024
            limit = size + int(opts.mem_limit_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))

    result: dict[str, Any] = {"syn_steps": opts.syn_steps, "mode": opts.mode, "device": str(device),
                              "threads": torch.get_num_threads(), "num_images": n_images, "batch": batch_size,
                              "num_parameters": student.num_parameters}
    peaks: list[int] = []
    seconds: list[float] = []
    try:
        tracker = SavedTensorTracker()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(tracker.pack, tracker.unpack):
            result["loss"] = iteration()
        if cuda:
            torch.cuda.synchronize()
            peaks.append(torch.cuda.max_memory_allocated() - base_alloc)
        result["hooked_seconds"] = time.perf_counter() - t0
        result["saved_mib"] = tracker.peak / MIB
        result["saved_tensors_packed"] = tracker.packed
        for _ in range(opts.repeats):
            if cuda:
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            iteration()
            if cuda:
                torch.cuda.synchronize()
                peaks.append(torch.cuda.max_memory_allocated() - base_alloc)
            seconds.append(time.perf_counter() - t0)
    except (MemoryError, RuntimeError) as err:
        # under the RLIMIT_AS cap an allocation failure surfaces as MemoryError, "can't allocate memory" or, from
        # oneDNN, "could not create a primitive"; CUDA raises torch.OutOfMemoryError (a RuntimeError)
        capped = not cuda and opts.mem_limit_gib > 0
        if not (isinstance(err, MemoryError | torch.OutOfMemoryError) or capped):
            raise
        result["error"] = "out of memory" if not capped else f"out of memory (cap {opts.mem_limit_gib} GiB)"
        result["detail"] = str(err).strip().splitlines()[-1][:300] if str(err).strip() else type(err).__name__
        return result
    result["per_iteration"] = seconds
    result["seconds_per_iteration"] = statistics.median(seconds) if seconds else result["hooked_seconds"]
    if cuda:
        result["peak_mib"] = max(peaks) / MIB
    else:
        assert rss_before is not None and peak_before is not None
        result["rss_mib"] = (_peak_rss_kib() - (rss_before if reset else peak_before)) / 1024
        result["rss_method"] = "VmHWM reset by clear_refs - VmRSS before" if reset else "ru_maxrss delta (lower bound)"
    return result


# ---------------------------------------------------------------------------------------------------- driver


def run_one(opts: argparse.Namespace, syn_steps: int, mode: str) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--mode", mode, "--syn-steps", str(syn_steps),
           "--ipc", str(opts.ipc), "--batch", str(opts.batch), "--repeats", str(opts.repeats), "--device", opts.device,
           "--threads", str(opts.threads), "--seed", str(opts.seed), "--images", opts.images,
           "--mem-limit-gib", str(opts.mem_limit_gib)]
    if opts.root:
        cmd += ["--root", opts.root]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(opts.threads))
    env.setdefault("MKL_NUM_THREADS", str(opts.threads))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"syn_steps": syn_steps, "mode": mode, "error": f"worker exited with {proc.returncode}",
            "detail": " | ".join(tail)}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 40, 80], help="syn_steps values")
    parser.add_argument("--ipc", type=int, default=10, help="images per class (10 classes)")
    parser.add_argument("--batch", type=int, default=100, help="batch_syn: images per student step")
    parser.add_argument("--repeats", type=int, default=3, help="timed iterations per measurement (after the hooked)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads of each worker")
    parser.add_argument("--images", choices=("random", "real"), default="random")
    parser.add_argument("--root", default=None, help="CIFAR-10 root for --images real")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mem-limit-gib", type=float, default=None,
                        help="CPU: cap each worker's growth (RLIMIT_AS); default 60%% of MemAvailable, 0 = no cap")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=MODES, default="plain", help=argparse.SUPPRESS)
    parser.add_argument("--syn-steps", type=int, default=5, help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.images == "real" and not opts.root:
        parser.error("--images real needs --root")
    if opts.mem_limit_gib is None:
        opts.mem_limit_gib = 0.0 if opts.device.startswith("cuda") else round(0.6 * _mem_available_gib(), 1)
    if opts.worker:
        print(MARK + json.dumps(worker(opts)), flush=True)
        return {}

    cuda = opts.device.startswith("cuda")
    mem_key, mem_name = ("peak_mib", "peak MiB") if cuda else ("rss_mib", "RSS MiB")
    results: dict[str, Any] = {"settings": {k: v for k, v in vars(opts).items() if k not in ("worker", "mode",
                                                                                             "syn_steps")},
                               "rows": []}
    failed: set[str] = set()
    print(f"| syn_steps | mode | s/iter | saved MiB | {mem_name} | time cm/plain | saved cm/plain | "
          f"{mem_name.split()[0]} cm/plain |", flush=True)
    print("|---:|---|---:|---:|---:|---:|---:|---:|", flush=True)
    for k, syn_steps in enumerate(sorted(opts.steps)):
        order = MODES if k % 2 == 0 else MODES[::-1]
        rows: dict[str, dict[str, Any]] = {}
        for mode in order:
            if mode in failed:
                rows[mode] = {"syn_steps": syn_steps, "mode": mode, "error": "skipped (smaller syn_steps failed)"}
            else:
                rows[mode] = run_one(opts, syn_steps, mode)
                if "error" in rows[mode]:
                    failed.add(mode)
        plain, cm = rows["plain"], rows["constant_memory"]

        def ratio(key: str, plain: dict[str, Any] = plain, cm: dict[str, Any] = cm) -> float | None:
            if key in plain and key in cm and plain[key]:
                return float(cm[key]) / float(plain[key])
            return None

        ratios = {"time": ratio("seconds_per_iteration"), "saved": ratio("saved_mib"), "memory": ratio(mem_key)}
        for mode in MODES:
            row = rows[mode]
            results["rows"].append(row)
            if "error" in row:
                print(f"| {syn_steps} | {mode} | {row['error']} | | | | | |", flush=True)
                continue
            shown = ratios if mode == "constant_memory" else {}
            print(f"| {syn_steps} | {mode} | {_fmt(row['seconds_per_iteration'], 3)} | {_fmt(row['saved_mib'], 1)} | "
                  f"{_fmt(row.get(mem_key), 1)} | {_fmt(shown.get('time'))} | {_fmt(shown.get('saved'), 3)} | "
                  f"{_fmt(shown.get('memory'), 3)} |", flush=True)
        results.setdefault("ratios", {})[str(syn_steps)] = ratios
    for row in results["rows"]:
        if "detail" in row:
            print(f"{row['mode']} syn_steps={row['syn_steps']}: {row['error']}: {row['detail']}", file=sys.stderr)
    if opts.json:
        Path(opts.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
