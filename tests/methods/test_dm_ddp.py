"""DM under real DDP (2 processes, gloo on CPU): the image step uses the mean of the ranks' gradients."""

from __future__ import annotations

import os

import torch

from lightning_dd.augment import DSA
from lightning_dd.data import ClassBalancedBatchSampler
from lightning_dd.data.protocol import random_real_subset
from tests.helpers import digits_data, quiet_trainer, tiny_dm

LR = 0.5


def make_model():
    return tiny_dm(ipc=1, optimizer=lambda p: torch.optim.SGD(p, lr=LR, momentum=0.5))


def test_ddp_spawn_step_equals_mean_of_rank_gradients(tmp_path):
    model = make_model()
    trainer = quiet_trainer(tmp_path, max_steps=1, strategy="ddp_spawn", devices=2)
    trainer.fit(model, digits_data(batch_real=8))
    ddp_images = model.synthetic.images.detach().clone()

    # independent single-process computation of the same step, on one thread as each of the 2 ranks ran (Lightning
    # gives each process cpu_count // 2 threads; oneDNN's convolution kernels, hence the last bits, depend on it)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    try:
        expected, grads = reference_step()
    finally:
        torch.set_num_threads(threads)
    assert not torch.allclose(grads[0], grads[1])  # ranks really saw different real batches
    # equal up to float rounding (oneDNN may pick other kernels in the ranks: differences of ~4e-5 were seen) ...
    torch.testing.assert_close(ddp_images, expected, rtol=0, atol=2e-4)
    # ... and far from what either rank's gradient alone would give
    start = expected + LR * (grads[0] + grads[1]) / 2
    for g in grads:
        assert (ddp_images - (start - LR * g)).abs().max() > 2e-3  # 10x the tolerance above


def reference_step() -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The first DDP step computed in one process: SGD on the mean of both ranks' image gradients."""
    data = digits_data(batch_real=8)
    data.setup("fit")
    ref = make_model()
    ref.synthetic.fill_(random_real_subset(data, 10, 1, seed=0))
    ref.dsa = DSA(data.info.dsa_strategy)
    start = ref.synthetic.images.detach().clone()
    state = ref.generator.get_state()
    grads = []
    for rank in (0, 1):
        sampler = ClassBalancedBatchSampler(data.store.indices_by_class, data.per_class, 100, seed=0, rank=rank,
                                            world_size=2)
        real = data.normalize(data.store.images[sampler.batch(0, epoch=0, rank=rank)])
        ref.generator.set_state(state)  # every rank draws the same network and DSA parameters
        loss, _ = ref.match(real.view(10, data.per_class, 1, 8, 8))
        grads.append(torch.autograd.grad(loss, ref.synthetic.images)[0])
    return start - LR * (grads[0] + grads[1]) / 2, grads  # first SGD step: momentum buffer = gradient
