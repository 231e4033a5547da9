"""Real Optuna studies with fake-but-valid trials, shared by tests/results, tests/plots and tests/report.

Trials follow the search/trial user-attribute contract (COMMON.md): real arch strings from the default search
space, analytic MACs/params from ``nas_harness.flops``, and a synthetic accuracy that grows with log-MACs and
with SE so that fronts and colourings have structure to check.
"""

from __future__ import annotations

import math
import random
import shutil
import tempfile
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from nas_harness.flops import count_macs, count_params
from nas_harness.presets import efficientnet_b0
from nas_harness.scaling import scale_arch
from nas_harness.space import SearchSpace

RES, NUM_CLASSES, CHANNELS = 32, 10, 1
CONFIG = {
    "name": "fake",
    "objective": {"kind": "multi"},
    "sampler": {"kind": "nsgaii"},
    "data": {"dataset": "fashion_mnist", "resolution": RES, "channels": CHANNELS, "train_subset": 2000},
    "train": {"epochs": 2, "batch_size": 64, "optimizer": "sgd", "lr": 0.1},
    "trial": {"stem_stride": 1, "macs_resolution": RES, "macs_num_classes": NUM_CLASSES},
    "run": {"n_trials": 40},
}


def _attrs(arch, acc: float | None, **extra) -> dict:
    macs = count_macs(arch, RES, num_classes=NUM_CLASSES, in_channels=CHANNELS, stem_stride=1).total
    attrs = {
        "arch": str(arch), "macs": int(macs), "params": count_params(arch, NUM_CLASSES, CHANNELS),
        "epochs_planned": 2.0, "epochs": 2.0, "full_budget": True, "wall_time_s": 3.0, "images_per_s": 900.0,
        "device": "cpu", "seed": 0, "versions": {"optuna": optuna.__version__}, "cached": False,
        "macs_resolution": RES,
    }
    if acc is not None:
        attrs.update(val_acc=acc, val_acc_final=acc - 0.005, reward=acc)
    attrs.update(extra)
    return attrs


def synthetic_acc(arch, macs: float, rng: random.Random) -> float:
    se = sum(s.se is not None for s in arch.stages) / len(arch.stages)
    return min(0.97, 0.70 + 0.06 * math.log10(macs / 1e6) + 0.03 * se + rng.gauss(0, 0.01))


def make_study(storage: str, name: str = "fake", n: int = 30, seed: int = 0, objective: str = "multi",
               references: bool = True, failures: int = 2, pruned: int = 3) -> optuna.Study:
    """A multi-objective (val_acc max, macs min) study with references, pruned and failed trials."""
    rng = random.Random(seed)
    space = SearchSpace.default()
    dists = {k: CategoricalDistribution(v) for k, v in space.param_grid().items()}
    directions = ["maximize", "minimize"] if objective == "multi" else ["maximize"]
    study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    study.set_user_attr("config", dict(CONFIG, name=name, objective={"kind": objective}))
    study.set_user_attr("objective", objective)
    study.set_user_attr("metric_names", ["val_acc", "macs"] if objective == "multi" else ["reward"])

    def values(attrs):
        return [attrs["val_acc"], attrs["macs"]] if objective == "multi" else [attrs["reward"]]

    if references:
        b0 = efficientnet_b0()
        for ref, arch in (("b0", b0), ("b0-w0.5", scale_arch(b0, width=0.5))):
            macs = count_macs(arch, RES, num_classes=NUM_CLASSES, in_channels=CHANNELS, stem_stride=1).total
            a = _attrs(arch, synthetic_acc(arch, macs, rng) - 0.01, reference=ref)
            params = space.params_of(arch) if arch in space else {}
            study.add_trial(optuna.trial.create_trial(
                values=values(a), params=params, distributions={k: dists[k] for k in params}, user_attrs=a))
    for i in range(n):
        arch = space.sample(rng)
        params = space.params_of(arch)
        macs = count_macs(arch, RES, num_classes=NUM_CLASSES, in_channels=CHANNELS, stem_stride=1).total
        acc = synthetic_acc(arch, macs, rng)
        if i < failures:
            a = _attrs(arch, None, fail_reason="non-finite loss nan at step 3", full_budget=False, epochs=0.1)
            study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, params=params,
                                                      distributions=dists, user_attrs=a))
        elif i < failures + pruned:
            a = _attrs(arch, acc - 0.05, full_budget=False, epochs=1.0)
            study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, params=params,
                                                      distributions=dists, user_attrs=a,
                                                      intermediate_values={0: acc - 0.05}))
        else:
            a = _attrs(arch, acc)
            study.add_trial(optuna.trial.create_trial(values=values(a), params=params,
                                                      distributions=dists, user_attrs=a))
    return study


def known_points_study(storage: str, name: str, points: list[tuple[float, float]],
                       extra: list[dict] | None = None) -> optuna.Study:
    """A study whose COMPLETE trials sit at the given (macs, val_acc) points (arch strings from B0 widths)."""
    study = optuna.create_study(storage=storage, study_name=name, directions=["maximize", "minimize"])
    study.set_user_attr("objective", "multi")
    b0 = efficientnet_b0()
    for i, (macs, acc) in enumerate(points):
        arch = scale_arch(b0, width=0.25 + 0.05 * i)
        attrs = {"arch": str(arch), "macs": macs, "params": 1000 + i, "val_acc": acc, "full_budget": True,
                 "epochs": 1.0, "epochs_planned": 1.0}
        study.add_trial(optuna.trial.create_trial(values=[acc, macs], user_attrs=attrs))
    for e in extra or []:
        study.add_trial(optuna.trial.create_trial(**e))
    return study


_TEMPLATES: dict[tuple, Path] = {}


def study_folder(root: Path, name: str = "fake", **kwargs) -> Path:
    """``root/<name>/study.db`` with :func:`make_study`'s trials.

    Writing ~35 params per trial to SQLite costs ~0.3 s a trial, so each distinct study is built once per
    test session (in a temp dir) and copied for every test that asks for it.
    """
    key = (name, *sorted(kwargs.items()))
    if key not in _TEMPLATES:
        tmp = Path(tempfile.mkdtemp(prefix="nas_fake_study_")) / "study.db"
        make_study(f"sqlite:///{tmp}", name=name, **kwargs)
        _TEMPLATES[key] = tmp
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(_TEMPLATES[key], folder / "study.db")
    return folder
