"""Time one DM iteration for several ``classes_per_forward`` settings, in one run, and print the ratios.

CIFAR-10 shapes (10 classes x ``--batch-real`` real images of 3x32x32, IPC ``--ipc``), reference ConvNet-3, siamese
DSA, fresh network per iteration: exactly ``DM.match`` + backward. Synthetic tensors stand in for the images (the
cost does not depend on pixel values). Usage:

    python benchmarks/dm_classes_per_forward.py [--device cuda] [--batch-real 256] [--ipc 10] [--iters 5]

Prints seconds per iteration for each setting and its time relative to one batched forward of all classes.
"""

from __future__ import annotations

import argparse

import torch
from _timing import timed

from lightning_dd.augment import DSA
from lightning_dd.methods.dm import dm_loss
from lightning_dd.networks import create_network, reinitialize_


def make_step(chunk: int, real: torch.Tensor, syn: torch.Tensor):
    """A closure running one DM iteration with ``chunk`` classes per forward."""
    device = real.device
    generator = torch.Generator().manual_seed(0)
    net = create_network("convnet", 3, 10, (32, 32), generator=generator).to(device).requires_grad_(False)
    dsa = DSA("color_crop_cutout_flip_scale_rotate")

    def step() -> None:
        reinitialize_(net, generator)
        params = dsa.sample(real.shape[0], generator, image_size=(32, 32))
        loss = dm_loss(net, real, syn, dsa, params, chunk)
        loss.backward()
        syn.grad = None

    return step



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 2, 5, 10])
    args = parser.parse_args()
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    real = torch.randn(10, args.batch_real, 3, 32, 32, generator=g).to(device)
    syn = torch.randn(10, args.ipc, 3, 32, 32, generator=g).to(device).requires_grad_(True)
    print(f"device={device} torch_threads={torch.get_num_threads()} batch_real={args.batch_real} ipc={args.ipc}")
    steps = {chunk: make_step(chunk, real, syn) for chunk in args.chunks}
    for step in steps.values():
        step()  # warm-up
    samples: dict[int, list[float]] = {chunk: [] for chunk in steps}
    for _ in range(args.iters):  # round-robin: machine drifts hit every setting alike
        for chunk, step in steps.items():
            samples[chunk].append(timed(step, device))
    times = {chunk: sum(v) / len(v) for chunk, v in samples.items()}
    batched = times.get(10)
    for chunk, seconds in times.items():
        ratio = f"{seconds / batched:.2f}x the batched time" if batched else ""
        print(f"classes_per_forward={chunk:>2}: {seconds:.3f} s/iteration  {ratio}")


if __name__ == "__main__":
    main()
