"""Front points and references carry their Wilson 95% interval as error bars (when the split size is known)."""

from __future__ import annotations

import numpy as np
import optuna
from matplotlib.collections import LineCollection

from nas_harness.plots import plot_accuracy_vs_cost
from nas_harness.presets import efficientnet_b0
from nas_harness.results import accuracy_interval, trials_frame
from nas_harness.scaling import scale_arch


def _frame(val_n: int | None):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr("objective", "multi")
    for i, (ref, macs, acc) in enumerate([("base", 35e6, 0.731), (None, 30e6, 0.742), (None, 20e6, 0.70)]):
        attrs = {"arch": str(scale_arch(efficientnet_b0(), width=0.25 + 0.05 * i)), "macs": macs, "params": 10 + i,
                 "val_acc": acc, "full_budget": True, "epochs": 2.0, "epochs_planned": 2.0}
        if val_n:
            attrs["val_n"] = val_n
        if ref:
            attrs["reference"] = ref
        study.add_trial(optuna.trial.create_trial(values=[acc, macs], user_attrs=attrs))
    return trials_frame(study)


def _bars(fig) -> list[np.ndarray]:
    """Vertical segments of the error bars: one (2, 2) array per bar."""
    ax = fig.axes[0]
    out = []
    for coll in ax.collections:
        if isinstance(coll, LineCollection):
            out += [np.asarray(seg) for seg in coll.get_segments() if len(seg) == 2 and seg[0][0] == seg[1][0]]
    return out


def test_error_bars_are_the_wilson_intervals() -> None:
    fig = plot_accuracy_vs_cost(_frame(1000))
    bars = _bars(fig)
    lo, hi = accuracy_interval(0.742, 1000)
    assert any(np.allclose(sorted([b[0][1], b[1][1]]), [100 * lo, 100 * hi]) for b in bars)
    lo, hi = accuracy_interval(0.731, 1000)  # the reference's bar
    assert any(np.allclose(sorted([b[0][1], b[1][1]]), [100 * lo, 100 * hi]) for b in bars)
    assert fig.axes[0].get_ylim()[1] >= 100 * accuracy_interval(0.742, 1000)[1]


def test_no_split_size_no_error_bars() -> None:
    assert _bars(plot_accuracy_vs_cost(_frame(None))) == []
