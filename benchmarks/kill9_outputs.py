"""kill -9 a real ``lightning-dd fit`` at random and write-timed moments; report what the outputs look like after.

Each trial starts a DM fit on digits that overwrites an existing artifact, writes an image grid every iteration and a
Lightning checkpoint every iteration, and kills it with SIGKILL either at a random time ("random") or as soon as the
artifact's temporary file appears ("during write"). After each kill it counts: artifacts that load (old or new) vs
truncated, checkpoints that load vs refused with a clear message vs failing otherwise, and temporary files left --
then writes the artifact once more and checks the dead writer's temporary file is gone.

    python benchmarks/kill9_outputs.py [--trials 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightning_dd.artifact import DistilledSet
from lightning_dd.methods.resume import read_checkpoint

ARGS = ["fit", "--model", "DM", "--model.ipc", "2", "--data.batch_real", "16", "--trainer.max_steps", "40",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
        "--model.image_grid_every_n_steps", "1", "--trainer.callbacks+=ModelCheckpoint",
        "--trainer.callbacks.every_n_train_steps", "1", "--trainer.callbacks.save_top_k", "-1"]


def trial(root: Path, mode: str, rng: random.Random, duration: float) -> dict[str, int]:
    artifact = root / "out" / "distilled.pt"
    proc = subprocess.Popen([sys.executable, "-m", "lightning_dd", *ARGS, "--model.artifact_path", str(artifact),
                             "--trainer.default_root_dir", str(root / "run")], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if mode == "random":
        time.sleep(rng.uniform(0.5, duration))
    else:  # as soon as the artifact's temporary file exists
        deadline = time.monotonic() + duration + 30
        while time.monotonic() < deadline and proc.poll() is None and not list(artifact.parent.glob(".*.tmp")):
            time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    counts = {"artifact_loads": 0, "artifact_broken": 0, "ckpt_loads": 0, "ckpt_refused_clearly": 0,
              "ckpt_other_error": 0, "temp_files_left": 0, "temp_files_after_next_write": 0}
    try:
        good = DistilledSet.load(artifact)
        counts["artifact_loads"] = 1
    except Exception:
        counts["artifact_broken"] = 1
        good = None
    for ckpt in (root / "run" / "checkpoints").glob("*.ckpt"):
        try:
            read_checkpoint(ckpt)
            counts["ckpt_loads"] += 1
        except ValueError:
            counts["ckpt_refused_clearly"] += 1
        except Exception:
            counts["ckpt_other_error"] += 1
    counts["temp_files_left"] = len(list(artifact.parent.glob(".*.tmp")))
    if good is not None:
        good.save(artifact)
        counts["temp_files_after_next_write"] = len(list(artifact.parent.glob(".*.tmp")))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per mode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=str, default=None, help="also write the table as JSON here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env_root = root / "first"
        env_root.mkdir()
        start = time.monotonic()  # one complete run: the artifact every trial overwrites, and the run's length
        subprocess.run([sys.executable, "-m", "lightning_dd", *ARGS, "--model.artifact_path",
                        str(env_root / "out" / "distilled.pt"), "--trainer.default_root_dir", str(env_root / "run")],
                       cwd=env_root, check=True, capture_output=True)
        duration = time.monotonic() - start
        table: dict[str, dict[str, int]] = {}
        for mode in ("random", "during write"):
            total: dict[str, int] = {}
            for i in range(args.trials):
                trial_root = root / f"{mode.replace(' ', '_')}{i}"
                (trial_root / "out").mkdir(parents=True)
                os.link(env_root / "out" / "distilled.pt", trial_root / "out" / "distilled.pt")
                for key, value in trial(trial_root, mode, rng, duration).items():
                    total[key] = total.get(key, 0) + value
            table[mode] = total
    keys = list(next(iter(table.values())))
    print(f"kill -9 of `lightning-dd fit` (one full run: {duration:.1f} s), {args.trials} trials per mode")
    print("| mode | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for mode, counts in table.items():
        print(f"| {mode} | " + " | ".join(str(counts[k]) for k in keys) + " |")
    if args.output:
        Path(args.output).write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
