"""Random vs DM, DSA, IDC (+ CMI), MTT (+ CMI), IDM (+ IID, + CMI) on CIFAR-10 at one reduced CPU budget, via the CLI.

Every run uses seed 0, IPC ``--ipc`` (10), 64 real images per class per matching batch, the same evaluation: the in-run
evaluator's reference recipe (fresh ConvNet-3 students, SGD lr 0.01 momentum 0.9, DSA, lr x0.1 at half), ``--students``
students x ``--epochs`` epochs, final weights, mean ± population std. Iterations per method are given on the command
line (defaults: about ten CPU minutes each on a 2-core machine) and printed with the results. CMI needs a proxy pool
(``--pool``, e.g. ``lightning-dd pretrain --recipe cmi --network convnet ...``). MTT needs an expert buffer
(``--experts``, ``lightning-dd experts --space zca ...`` for the ZCA cells) and runs the author table's cell for the
IPC (``configs/overrides/mtt/cifar10_ipc<k>.yaml``); its students train with the learned step size (MTT's protocol).
MTT + CMI adds ``configs/regularizers/cmi.yaml`` with ``--mtt_cmi_weight``. IDM runs the command.txt cell for the IPC
(``configs/overrides/idm/cifar10_ipc<k>.yaml``) for ``--idm_iterations`` iterations (each ten image steps and the queue
training); IDM + IID and IDM + CMI add the published cells (``overrides/idm_iid``, ``overrides/idm_cmi``) with the pool
and, when given, ``--idm_iid_weights CC CM`` / ``--idm_cmi_weight`` (λ is tied to the proxy's feature scale).

    python benchmarks/compare_cifar10.py --root ~/.cache/lightning_dd/data/cifar10 --pool pools/cifar10_convnet.pt \
        --out /tmp/compare
    python benchmarks/compare_cifar10.py --root ~/.cache/lightning_dd/data/cifar10 --pool pools/cifar10_convnet.pt \
        --ipc 1 --experts experts/cifar10_zca --only random DM MTT MTT+CMI --out /tmp/compare_ipc1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run(name: str, args: list[str], out: Path, students: int, epochs: int, ipc: int) -> dict:
    """One ``lightning-dd fit``; returns its eval.json plus wall time."""
    root = out / name
    cmd = [sys.executable, "-m", "lightning_dd", "fit", *args, "--model.ipc", str(ipc), "--seed_everything", "0",
           "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
           "--trainer.log_every_n_steps", "1",
           "--trainer.callbacks+=lightning_dd.callbacks.DistilledSetEvaluator",
           "--trainer.callbacks.num_students", str(students), "--trainer.callbacks.epochs", str(epochs),
           "--trainer.callbacks.compare_random", "false", "--trainer.callbacks.progress", "false"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    (result,) = root.glob("**/eval.json")
    data = json.loads(result.read_text())
    data["wall_seconds"] = wall
    data["command"] = " ".join(cmd[2:])
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="CIFAR-10 root (train/ and test/ class folders, or the pickles)")
    parser.add_argument("--pool", required=True, help="proxy pool for CMI")
    parser.add_argument("--ipc", type=int, default=10, choices=(1, 10, 50))
    parser.add_argument("--experts", default=None, help="MTT expert buffer directory (needed for MTT runs)")
    parser.add_argument("--mtt_iterations", type=int, default=200)
    parser.add_argument("--mtt_cmi_weight", type=float, default=10.0)
    parser.add_argument("--idm_iterations", type=int, default=40)
    parser.add_argument("--idm_cmi_weight", type=float, default=None, help="default: the shipped cell's λ")
    parser.add_argument("--idm_iid_weights", type=float, nargs=2, default=None, metavar=("CC", "CM"),
                        help="default: the shipped cell's λ_CC, λ_CM")
    parser.add_argument("--out", default="/tmp/compare_cifar10")
    parser.add_argument("--students", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--dm_iterations", type=int, default=500)
    parser.add_argument("--dsa_iterations", type=int, default=3)
    parser.add_argument("--idc_iterations", type=int, default=60)
    parser.add_argument("--only", nargs="*", default=None)
    opts = parser.parse_args()
    out = Path(opts.out)
    data = ["--data.dataset", "cifar10", "--data.root", opts.root, "--data.batch_real", "64"]
    idc = ["--config", str(CONFIGS / "method" / "idc.yaml"), *data,
           "--config", str(CONFIGS / "overrides" / "idc" / "cifar10_ipc10.yaml"),
           "--trainer.max_steps", str(10 * opts.idc_iterations)]
    runs = {
        "random": ["--config", str(CONFIGS / "method" / "random.yaml"), *data, "--trainer.max_steps", "1"],
        "DM": ["--config", str(CONFIGS / "method" / "dm.yaml"), *data, "--trainer.max_steps", str(opts.dm_iterations)],
        "DSA": ["--config", str(CONFIGS / "method" / "dsa.yaml"), *data,
                "--trainer.max_steps", str(10 * opts.dsa_iterations)],
        "IDC": idc,
        "IDC+CMI": [*idc, "--config", str(CONFIGS / "overrides" / "idc_cmi" / "cifar10_ipc10.yaml"),
                    "--model.regularizers.pool", opts.pool],
    }
    mtt = ["--config", str(CONFIGS / "method" / "mtt.yaml"), *data,
           "--config", str(CONFIGS / "overrides" / "mtt" / f"cifar10_ipc{opts.ipc}.yaml"),
           "--model.expert_buffer", str(opts.experts), "--trainer.max_steps", str(opts.mtt_iterations)]
    runs["MTT"] = mtt
    runs["MTT+CMI"] = [*mtt, "--config", str(CONFIGS / "regularizers" / "cmi.yaml"), "--model.regularizers.pool",
                       opts.pool, "--model.regularizers.weight", str(opts.mtt_cmi_weight)]
    idm = ["--config", str(CONFIGS / "method" / "idm.yaml"), *data,
           "--config", str(CONFIGS / "overrides" / "idm" / f"cifar10_ipc{opts.ipc}.yaml"),
           "--data.batch_real", "64", "--trainer.max_steps", str(10 * opts.idm_iterations)]
    runs["IDM"] = idm
    iid_weights = [] if opts.idm_iid_weights is None else [
        "--model.regularizers.weight_cc", str(opts.idm_iid_weights[0]),
        "--model.regularizers.weight_cm", str(opts.idm_iid_weights[1])]
    cmi_weight = [] if opts.idm_cmi_weight is None else ["--model.regularizers.weight", str(opts.idm_cmi_weight)]
    for reg, weights in (("iid", iid_weights), ("cmi", cmi_weight)):
        cell = CONFIGS / "overrides" / f"idm_{reg}" / f"cifar10_ipc{opts.ipc}.yaml"
        if cell.is_file():
            runs[f"IDM+{reg.upper()}"] = [*idm, "--config", str(cell), "--model.regularizers.pool", opts.pool,
                                         *weights]
    results = {}
    summary = out / "summary.json"
    if summary.is_file():
        results = json.loads(summary.read_text())
    for name, args in runs.items():
        if (opts.only and name not in opts.only) or name in results:
            continue
        if name.startswith("MTT") and opts.experts is None:
            parser.error(f"{name} needs --experts (an expert buffer directory)")
        results[name] = run(name.replace("+", "_"), args, out, opts.students, opts.epochs, opts.ipc)
        out.mkdir(parents=True, exist_ok=True)
        summary.write_text(json.dumps(results, indent=1))
    print(f"CIFAR-10, IPC {opts.ipc}, seed 0, {opts.students} students x {opts.epochs} epochs (reference recipe):")
    for name, r in results.items():
        method = next(k for k in r if k not in ("iteration", "epochs", "students", "recipe", "wall_seconds",
                                                 "command", "whole_epochs"))
        acc = r[method]["convnet"]
        print(f"  {name:<8} iterations {r['iteration']:>4}  epochs {r['epochs']:>4}  "
              f"accuracy {acc['mean']:6.2f} ± {acc['std']:5.2f}  wall {r['wall_seconds'] / 60:5.1f} min")


if __name__ == "__main__":
    main()
