"""Seed derivation: every random stream of a run comes from the run seed, never from the clock or the global RNG.

Streams are keyed by small integers (seed, purpose, rank, epoch, index, ...) and mixed with SplitMix64, so that
neighbouring keys give unrelated generators and any stream can be recreated without replaying the others.
"""

from __future__ import annotations

import torch

_MASK = (1 << 64) - 1

# Purposes of the run's streams (stable numbers: changing them changes every result).
STREAM_INIT = 1  # choice of the real images a synthetic set starts from
STREAM_TRAIN = 2  # per-iteration randomness of a method (random networks, DSA parameters, proxy choice)
STREAM_EVAL = 3  # student initialisation, shuffling and augmentation in evaluation
STREAM_SAMPLER = 4  # real-batch sampling


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def derive_seed(*keys: int) -> int:
    """A 63-bit seed determined by the integer ``keys`` (order matters); negative keys are allowed."""
    h = 0
    for key in keys:
        h = _splitmix64(h ^ (int(key) & _MASK))
    return h >> 1


def make_generator(*keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed` of ``keys``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(*keys))
    return generator
