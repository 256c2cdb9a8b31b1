"""Same seed -> bit-identical DM and random images before and after the re-cut of the base.

The digests were produced by the code before the re-cut (commit ac973e5) with exactly these settings; the new base,
DM and random baseline must reproduce them bit for bit (CPU, float32) on a CPU whose oneDNN kernels are those the
digests were made with. Other CPUs (another SIMD width: oneDNN picks other convolution kernels) differ in the last
bits; there the per-image, per-channel means must equal :data:`MEANS` (recorded from the post-re-cut code on such a
CPU, after it had matched the digests on the first) within 1e-4.
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

#: per-image, per-channel means of the final images (the fallback check on CPUs with other kernels)
MEANS = {
    "cifar_dm": [
        0.015992, 0.032125, 0.292391, -0.03311, 0.158263, 0.268466, -0.035874, 0.095645, 0.210615, 0.134914, 0.082042,
        0.213584, 0.018276, 0.073833, 0.257513, 0.007852, 0.062632, 0.332378, 0.031168, 0.078948, 0.346968, 0.060632,
        0.185118, 0.240374, 0.011404, 0.014348, 0.168977, 0.04734, 0.116228, 0.257667, 0.015111, 0.144632, 0.23417,
        0.066225, 0.005112, 0.257783, 0.012617, -0.02195, 0.401507, 0.034745, 0.094777, 0.301531, 0.030324, 0.021292,
        0.366471, 0.090787, 0.085105, 0.179525, 0.003135, 0.076376, 0.29928, -0.002064, 0.045243, 0.264158, 0.014702,
        0.068098, 0.288103, -0.022492, 0.149043, 0.282405
    ],
    "cifar_random": [
        0.013642, 0.033936, 0.291643, -0.036108, 0.159081, 0.266741, -0.035483, 0.096201, 0.209734, 0.134514,
        0.082469, 0.212459, 0.016898, 0.074863, 0.259405, 0.006486, 0.06334, 0.335274, 0.033311, 0.079031, 0.348211,
        0.060893, 0.187295, 0.241896, 0.010727, 0.013712, 0.168199, 0.047509, 0.116809, 0.258014, 0.016898, 0.144773,
        0.239, 0.06572, 0.006164, 0.260358, 0.01156, -0.018381, 0.404304, 0.034447, 0.098352, 0.30378, 0.030547,
        0.020338, 0.364616, 0.089743, 0.084697, 0.177611, 0.002265, 0.075728, 0.30016, -0.003963, 0.044326, 0.26655,
        0.013301, 0.071694, 0.287947, -0.02545, 0.151745, 0.280859
    ],
    "digits_dm": [
        0.087642, 0.138341, 0.213069, 0.2746, 0.108191, 0.08211, -0.134465, -0.102873, 0.046616, 0.038388, -0.086803,
        -0.028657, -0.043841, 0.123911, 0.006774, 0.038862, -0.060327, 0.19165, -0.107378, -0.09151
    ],
    "digits_dm_noise": [
        -0.061568, -0.022663, 0.131091, -0.19055, -0.004333, 0.133845, -0.210563, -0.03354, -0.060615, 0.209197,
        0.042353, 0.011477, -0.091887, -0.203613, 0.008147, 0.025905, -0.095024, 0.036173, 0.088444, -0.102
    ],
    "digits_random": [
        0.088008, 0.139955, 0.212583, 0.274952, 0.108201, 0.082146, -0.135087, -0.103984, 0.04632, 0.038504,
        -0.086071, -0.029076, -0.044546, 0.123996, 0.007401, 0.038341, -0.060342, 0.191739, -0.109195, -0.091608
    ],
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
        images = run(case, tmp_path)
        if digest(images) != EXPECTED[case]:  # another CPU's kernels: equal up to float rounding
            means = images.detach().float().mean(dim=(2, 3)).flatten()
            torch.testing.assert_close(means, torch.tensor(MEANS[case]), rtol=0, atol=1e-4)
    finally:
        torch.set_num_threads(threads)
