"""Quality: distillation must beat the random real subset of the same size under the same evaluation."""

from __future__ import annotations

from lightning_dd.callbacks import DistilledSetEvaluator
from tests.helpers import digits_data, quiet_trainer, tiny_dm


def test_dm_beats_random_on_digits_at_ipc1(tmp_path):
    """DM (100 iterations, 32 real images/class) vs the random subset it starts from, 3 ConvNet students x 200
    epochs each. Measured: DM 72.5 ± 0.6 %, random 54.4 ± 2.2 % (seed 0); we require a clear 8-point margin."""
    evaluator = DistilledSetEvaluator(num_students=3, epochs=200, compare_random=True, output="")
    model = tiny_dm(ipc=1)
    quiet_trainer(tmp_path, max_steps=100, callbacks=[evaluator]).fit(model, digits_data(batch_real=32))
    dm = evaluator.results["DM"]["convnet"]
    random = evaluator.results["random"]["convnet"]
    assert len(dm["accs"]) == len(random["accs"]) == 3
    assert dm["mean"] > random["mean"] + 8.0, (dm, random)
