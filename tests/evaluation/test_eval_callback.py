"""The in-run evaluator logs eval/acc_mean and eval/acc_std at its interval, from students of the current images."""

from __future__ import annotations

import pytest

from lightning_dd.callbacks import DistilledSetEvaluator
from lightning_dd.evaluation import mean_std
from tests.helpers import digits_data, quiet_trainer, tiny_dm


def test_periodic_evaluation_logs_mean_and_std(tmp_path):
    logged = []

    class Spy(DistilledSetEvaluator):
        def evaluate(self, trainer, module, distilled, step):
            summary = super().evaluate(trainer, module, distilled, step)
            logged.append((step, summary))
            return summary

    evaluator = Spy(every_n_steps=2, num_students=2, epochs=2, models=["mlp"], compare_random=False, output="")
    trainer = quiet_trainer(tmp_path, max_steps=3, callbacks=[evaluator])
    trainer.fit(tiny_dm(ipc=1), digits_data(batch_real=8))
    steps = [step for step, _ in logged]
    assert steps == [2, 3]  # at the interval, then once at the end of fit
    accs = logged[0][1]["mlp"]["accs"]
    mean, std = mean_std(accs)
    assert trainer.callback_metrics["eval/acc_mean"].item() == pytest.approx(mean, rel=1e-5)
    assert trainer.callback_metrics["eval/acc_std"].item() == pytest.approx(std, rel=1e-5, abs=1e-6)
    assert all(0.0 <= a <= 100.0 for a in accs)
