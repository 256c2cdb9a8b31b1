"""Same seed -> bit-identical DM and random images before and after the re-cut of the base.

The digests were produced by the code before the re-cut (commit ac973e5) with exactly these settings; the new base,
DM and random baseline must reproduce them bit for bit (CPU, float32).
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from lightning_dd.data import RealDataModule
from lightning_dd.methods import DM, RandomSelection
from tests.fixtures import write_cifar10
from tests.helpers import quiet_trainer

#: sha256 of the final images' float32 bytes, produced by the pre-re-cut code
EXPECTED = {
    "digits_dm": "0aa9934a8097195d96f4a4b8ae529fdc15881ef3e4242f06debb81921307704a",
    "digits_dm_noise": "e67c8354ba6105673b07bdbee000380ad826b901c29ee23319e793cbf79a4235",
    "digits_random": "7f8b1c1429d92cfb497155f00c445e0d08ff5c9b1663b7490f7da2eace907140",
    "cifar_dm": "73a68ed0edec96f763169ba4364e5cb3d0a360310079825cbb4812c77a3a55d7",
    "cifar_random": "e537f4a6b6222acd85d2241979640fe28c3bad0314de4827630b37d7e65ec27b",
}


def digest(images: torch.Tensor) -> str:
    return hashlib.sha256(images.detach().contiguous().float().cpu().numpy().tobytes()).hexdigest()


def run(case: str, root) -> torch.Tensor:
    torch.set_num_threads(1)
    if case.startswith("digits"):
        data = RealDataModule("digits", batch_real=16, seed=3, iterations_per_epoch=4)
        shape = (1, 8, 8)
    else:
        write_cifar10(root, train_per_class=6, test_per_class=1, seed=0)
        data = RealDataModule("cifar10", root=str(root), batch_real=4, seed=3, iterations_per_epoch=4)
        shape = (3, 32, 32)
    common = {"ipc": 2, "num_classes": 10, "image_shape": shape, "seed": 3, "artifact_path": ""}
    if case.endswith("random"):
        model = RandomSelection(**common)
        steps = 1
    else:
        model = DM(**common, network="convnet_w32", init="noise" if case.endswith("noise") else "real",
                   optimizer=lambda p: torch.optim.SGD(p, lr=1.0, momentum=0.5))
        steps = 6
    quiet_trainer(root, max_steps=steps).fit(model, data)
    return model.synthetic.images


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_images_equal_the_pre_recut_code(case, tmp_path):
    threads = torch.get_num_threads()
    try:
        assert digest(run(case, tmp_path)) == EXPECTED[case]
    finally:
        torch.set_num_threads(threads)
