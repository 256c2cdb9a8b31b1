"""Per-iteration time of DM with and without the CMI / IID regularizers, measured in one run, printed as ratios.

CIFAR-10 shapes (10 classes, IPC ``--ipc``, ``--batch-real`` real images per class, 3x32x32), the reference DM step
(fresh ConvNet-3, siamese DSA, one image step) with the regularizers attached through the same hook a ``fit`` uses.
The proxies are untrained networks of the pool's architecture (time does not depend on their weights). Usage:

    python benchmarks/regularizer_overhead.py [--device cuda] [--proxy resnet18] [--batch-real 64] [--iters 5]

Prints seconds per iteration and the ratio to plain DM for: DM, DM+CMI, DM+CMI(every 5 steps), DM+IID, DM+CMI+IID.
"""

from __future__ import annotations

import argparse

import torch
from _timing import timed

from lightning_dd.methods import DM
from lightning_dd.networks import create_network
from lightning_dd.pretrained import ProxyPool, freeze
from lightning_dd.regularizers import CMIRegularizer, IIDRegularizer, RegularizerContext

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)


def make_pool(network: str, k: int, device: torch.device) -> ProxyPool:
    g = torch.Generator().manual_seed(0)
    nets = [freeze(create_network(network, 3, 10, (32, 32), generator=g).to(device)) for _ in range(k)]
    return ProxyPool(nets, network, "cifar10", (3, 32, 32), 10, MEAN, STD)


def make_step(regularizers: list, real: torch.Tensor, ipc: int, device: torch.device):
    """A closure running one DM iteration (match + regularizers + backward + image step)."""
    model = DM(ipc=ipc, num_classes=10, image_shape=(3, 32, 32), artifact_path="", regularizers=regularizers)
    model.to(device)
    model.data_meta = {"dataset": "cifar10", "class_names": [str(i) for i in range(10)], "mean": list(MEAN),
                       "std": list(STD), "dsa_strategy": "color_crop_cutout_flip_scale_rotate"}
    from lightning_dd.augment import DSA

    model.dsa = DSA("color_crop_cutout_flip_scale_rotate")
    model.chunk_size = model.resolve_chunk_size(device)
    with torch.no_grad():
        model.synthetic.images.normal_()
    optimizer = torch.optim.SGD(model.image_parameters(), lr=1.0, momentum=0.5)

    def step(i: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        result = model.match(real)
        loss = result.loss
        if regularizers:
            ctx: RegularizerContext = model.regularizer_context(real, result)
            ctx.step = i
            loss = loss + model.regularize(ctx)[0]
        loss.backward()
        optimizer.step()

    return step



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--proxy", default="resnet18", help="pool architecture (official: resnet18)")
    parser.add_argument("--batch-real", type=int, default=64)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--iters", type=int, default=10, help="iterations per setting (use a multiple of 5)")
    args = parser.parse_args()
    device = torch.device(args.device)
    real = torch.randn(10, args.batch_real, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(device)
    pool = make_pool(args.proxy, 2, device)
    settings = {
        "DM": [],
        "DM+CMI": [CMIRegularizer(pool, weight=8000.0)],
        "DM+CMI(every 5)": [CMIRegularizer(pool, weight=8000.0, every_n_steps=5)],
        "DM+IID": [IIDRegularizer(pool)],
        "DM+CMI+IID": [CMIRegularizer(pool, weight=8000.0), IIDRegularizer(pool)],
    }
    print(f"device={device} threads={torch.get_num_threads()} proxy={args.proxy} ipc={args.ipc} "
          f"batch_real={args.batch_real} iters={args.iters}")
    steps = {name: make_step(regs, real, args.ipc, device) for name, regs in settings.items()}
    for step in steps.values():
        step(0)  # warm-up
    # round-robin over the settings so drifts of the machine hit all of them alike; iteration i is the same
    # iteration index for every setting (every_n_steps variants compute on multiples of 5), median per setting
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(1, args.iters + 1):
        for name, step in steps.items():
            samples[name].append(timed(step, device, i))
    times = {name: sum(v) / len(v) for name, v in samples.items()}
    for name, seconds in times.items():
        print(f"{name:<16} {seconds:.3f} s/iteration (mean of {args.iters})  {seconds / times['DM']:.2f}x DM")


if __name__ == "__main__":
    main()
