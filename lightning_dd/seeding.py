"""Seed derivation: every random stream of a run comes from the run seed, never from the clock or the global RNG.

Streams are keyed by small integers (seed, purpose, rank, epoch, index, ...) and mixed with SplitMix64, so that
neighbouring keys give unrelated generators and any stream can be recreated without replaying the others.
"""

from __future__ import annotations

import torch

_MASK = (1 << 64) - 1

# The one table of the purposes of a run's random streams. Stable numbers: changing one changes every result that
# depends on it. A stream is ``make_generator(seed, STREAM_..., *more_keys)``; new purposes get a new number here.
STREAM_INIT = 1  # choice of the real images a synthetic set starts from (and noise init)
STREAM_TRAIN = 2  # per-iteration randomness of a method (random networks, DSA parameters)
STREAM_EVAL = 3  # student initialisation, shuffling and augmentation in evaluation
STREAM_SAMPLER = 4  # real-batch sampling (keys: epoch, rank, batch[, part])
STREAM_SAMPLER_EXTRA = 5  # the uniformly random extra real images of a batch (keys: epoch, rank, batch)
STREAM_PROXY_TRAIN = 11  # proxy pretraining: initialisation and shuffling of proxy k (key: k)
STREAM_PROXY_CHOICE = 12  # which proxy a regularizer uses at each iteration
STREAM_PRETRAIN_SUBSET = 13  # the seeded per-class subset `lightning-dd pretrain --max_images_per_class` trains on
STREAM_EXPERT = 14  # MTT expert k: initialisation, shuffling and augmentation of its training (key: k)

#: every stream purpose by name (a test checks the numbers are distinct)
STREAMS: dict[str, int] = {
    "init": STREAM_INIT,
    "train": STREAM_TRAIN,
    "eval": STREAM_EVAL,
    "sampler": STREAM_SAMPLER,
    "sampler_extra": STREAM_SAMPLER_EXTRA,
    "proxy_train": STREAM_PROXY_TRAIN,
    "proxy_choice": STREAM_PROXY_CHOICE,
    "pretrain_subset": STREAM_PRETRAIN_SUBSET,
    "expert": STREAM_EXPERT,
}


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
