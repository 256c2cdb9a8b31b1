"""Random vs DM vs DM+CMI vs DM+IID vs DM+CMI+IID on CIFAR-10 at one stated, reduced CPU budget, in one run.

Every setting uses the same seed (same initial images = the random baseline, same real batches, same random
networks) and the same evaluation (ConvNet students, per-sample DSA, final weights). For each it prints test accuracy
(mean ± population std over the students), the final CMI of the set under every proxy of the pool, and the mean
distillation time per iteration relative to plain DM (measured in this run).

    python benchmarks/regularized_dm_cifar10.py --root ~/.cache/lightning_dd/data --pool pools/cifar10_convnet.pt \
        [--iterations 200] [--batch-real 32] [--students 3] [--epochs 300] [--out results.json]
"""

from __future__ import annotations

import argparse
import json

import lightning as L
import torch
from _timing import IterationTimer

from lightning_dd._atomic import atomic_json_dump
from lightning_dd.callbacks import DistilledSetEvaluator
from lightning_dd.data import RealDataModule, random_real_subset
from lightning_dd.losses import CMILoss
from lightning_dd.methods import DM
from lightning_dd.pretrained import ProxyPool
from lightning_dd.regularizers import CMIRegularizer, IIDRegularizer


def final_cmi(images: torch.Tensor, labels: torch.Tensor, pool: ProxyPool) -> float:
    loss = CMILoss()
    with torch.no_grad():
        return sum(float(loss(images, labels, net, 10)) for net in pool.networks) / len(pool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--batch-real", type=int, default=32)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--students", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--cmi-weight", type=float, default=8000.0)
    parser.add_argument("--iid-weights", type=float, nargs=2, default=[0.05, 0.01], metavar=("CC", "CM"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settings", nargs="+", default=["DM", "DM+CMI", "DM+IID", "DM+CMI+IID"])
    parser.add_argument("--skip-random", action="store_true", help="do not evaluate the random baseline")
    parser.add_argument("--out", default="regularized_dm_cifar10.json")
    args = parser.parse_args()
    pool = ProxyPool.load(args.pool)
    results: dict[str, dict] = {"budget": vars(args)}
    for name in args.settings:
        regs = []
        if "CMI" in name:
            regs.append(CMIRegularizer(args.pool, weight=args.cmi_weight))
        if "IID" in name:
            regs.append(IIDRegularizer(args.pool, weight_cc=args.iid_weights[0], weight_cm=args.iid_weights[1]))
        model = DM(ipc=args.ipc, num_classes=10, image_shape=(3, 32, 32), seed=args.seed, artifact_path="",
                   regularizers=regs)
        data = RealDataModule("cifar10", root=args.root, batch_real=args.batch_real, seed=args.seed)
        evaluator = DistilledSetEvaluator(num_students=args.students, epochs=args.epochs,
                                          compare_random=name == args.settings[0] and not args.skip_random,
                                          output="")
        timer = IterationTimer()
        trainer = L.Trainer(max_steps=args.iterations, accelerator="cpu", devices=1, use_distributed_sampler=False,
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[timer, evaluator])
        trainer.fit(model, data)
        distilled = model.distilled_set()
        times = timer.seconds
        seconds = sum(times[1:]) / max(1, len(times) - 1)  # the first iteration includes loading the pool
        cmi = final_cmi(distilled.images, distilled.labels, pool)
        results[name] = {**evaluator.results["DM"]["convnet"], "cmi": cmi, "seconds_per_iteration": seconds}
        if "random" in evaluator.results:
            images = random_real_subset(data, 10, args.ipc, args.seed)
            results["random"] = {**evaluator.results["random"]["convnet"],
                                 "cmi": final_cmi(images, distilled.labels, pool)}
        atomic_json_dump(results, args.out)
        print(json.dumps({name: results[name]}), flush=True)
    base = results.get("DM", {}).get("seconds_per_iteration")
    print(f"budget: {args.iterations} iterations, batch_real {args.batch_real}, IPC {args.ipc}, seed {args.seed}, "
          f"{args.students} ConvNet students x {args.epochs} epochs, pool {args.pool} ({pool.network} x {len(pool)})")
    for name in ["random", *args.settings]:
        r = results.get(name)
        if r is None:
            continue
        ratio = f"{r['seconds_per_iteration'] / base:.2f}x DM time" if base and "seconds_per_iteration" in r else ""
        print(f"{name:<12} acc {r['mean']:.2f} ± {r['std']:.2f}  CMI {r['cmi']:.4f}  {ratio}")


if __name__ == "__main__":
    main()
