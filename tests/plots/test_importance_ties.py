"""The same study gives the same importance order, ties included, whatever the process's string hashing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution

ROOT = Path(__file__).resolve().parents[2]


def test_tied_importances_are_ordered_the_same_in_every_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="ties", direction="maximize")
    dist = {f"s{i}_se": CategoricalDistribution([True, False]) for i in range(1, 8)}
    for k in range(6):  # every choice moves in lockstep: all importances are equal
        on = k % 2 == 0
        study.add_trial(optuna.trial.create_trial(value=float(on), params=dict.fromkeys(dist, on),
                                                  distributions=dist, user_attrs={"val_acc": 0.5 + 0.3 * on}))
    code = ("import sys, optuna; from nas_harness.plots.importance import param_importances; "
            "print(list(param_importances(optuna.load_study(study_name='ties', storage=sys.argv[1]), 'val_acc')))")
    orders = {subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True, cwd=ROOT,
                             env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2, 3)}
    assert len(orders) == 1, orders
    assert orders.pop().startswith("['s1_se', 's2_se'")
