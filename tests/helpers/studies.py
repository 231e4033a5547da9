"""Tiny study files for the search tests (synthetic data, width-0.25 nets, 16 px, 1 epoch) and a tiny ablation
file (three steps per run)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

TINY: dict[str, Any] = {
    "name": "tiny",
    "base": "b0",
    "base_width": 0.25,
    "base_depth": 0.34,
    "seed": 0,
    "space": {"kernels": [3, 5], "expands": [1, 3], "se": [True, False], "repeats_delta": 0},
    "data": {"dataset": "synthetic", "train_subset": 256, "val_size": 64, "resolution": 16, "channels": 3},
    # threads = 1: two torch threads on a busy 2-core machine are ~10x slower than one
    "train": {"epochs": 1, "batch_size": 64, "optimizer": "adamw", "lr": 0.01, "device": "cpu", "threads": 1,
              "augment": [], "bn_recalibrate": 1},
    "trial": {"stem_stride": 1, "macs_resolution": 224},
    "objective": {"kind": "reward", "target_macs": 10e6},
    "sampler": {"kind": "tpe", "n_startup_trials": 2},
    # workers = 1: in-process (tests/study/test_workers.py runs several worker processes)
    "run": {"n_trials": 2, "progress": False, "plots": False, "workers": 1},
}


def tiny_dict(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """A copy of TINY with results under tmp_path; keyword args replace/merge top-level keys or sections.

    A None value removes the key (e.g. ``train={"steps": 40, "epochs": None}``).  Keys that would have no
    effect after a merge (TPE's n_startup_trials with another sampler, the reward's
    target with another objective) are dropped, as a user would.
    """
    d = copy.deepcopy(TINY)
    d["run"]["results_dir"] = str(tmp_path / "results")
    for k, v in sections.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k].update(v)
            for key in [key for key, value in v.items() if value is None]:  # None removes a key
                del d[k][key]
        else:
            d[k] = v
    if d["sampler"].get("kind", "tpe") != "tpe":
        d["sampler"].pop("n_startup_trials", None)
    if d["objective"].get("kind", "reward") != "reward":
        d["objective"].pop("target_macs", None)
    return d


def to_toml(d: dict[str, Any]) -> str:
    """Minimal TOML writer for the flat-ish study dicts used in tests."""

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    lines = [f"{k} = {val(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"\n[{k}]")
            lines += [f"{kk} = {val(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def write_study(tmp_path: Path, **sections: Any) -> Path:
    d = tiny_dict(tmp_path, **sections)
    path = tmp_path / f"{d['name']}.toml"
    path.write_text(to_toml(d))
    return path


TINY_ARCH = "stem_c8_s1,ds_r1_k3_s1_e1_c8_se0.25,ir_r2_k3_s2_e3_c16_se0.25,head_c32_do0_dp0_silu"


def tiny_ablation(seeds: int = 2, extra: str = "") -> str:
    """An ablation file: TINY_ARCH with and without SE on synthetic 16 px data, three steps per run, in this
    process (``[run] workers = 1``, the last table: append run keys with :func:`with_run`); ``extra`` is
    appended (more tables)."""
    return f"""
name = "tiny"
base = "{TINY_ARCH}"
variants = ["baseline", "no_se"]
seeds = {seeds}
[trial]
macs_resolution = 16
[data]
dataset = "synthetic"
resolution = 16
val_size = 64
[train]
steps = 3
batch_size = 16
lr = 0.05
threads = 1
[run]
workers = 1
{extra}"""


def with_run(ablation: str, keys: str) -> str:
    """``ablation`` (from :func:`tiny_ablation`) with more ``[run]`` keys (TOML lines)."""
    return ablation.replace("[run]\n", "[run]\n" + keys.rstrip("\n") + "\n", 1)


def tiny_curves(seeds: int = 2, curves: str = "", extra: str = "") -> str:
    """A scaling-curves file: TINY_ARCH scaled by width, depth, resolution, width at (d=2, r=1.5) and compound
    phi 0-1 on synthetic 16 px data, three steps per run (``curves`` replaces the [curves] body)."""
    body = curves or ("width = [1.0, 2.0]\ndepth = [1.0, 2.0]\nresolution = [1.0, 1.5]\nwidth_at = [[2.0, 1.5]]\n"
                      "compound_phi = [0, 1]")
    return f"""
name = "tiny"
base = "{TINY_ARCH}"
seeds = {seeds}
[curves]
{body}
[trial]
macs_resolution = 16
[data]
dataset = "synthetic"
resolution = 16
val_size = 64
[train]
steps = 3
batch_size = 16
lr = 0.05
threads = 1
[run]
workers = 1
{extra}"""


def stored_ablation(tmp_path: Path) -> tuple[Any, Path]:
    """``a.toml`` (:func:`tiny_ablation`, 2 seeds) in ``tmp_path`` with every (variant, seed) run stored without
    training (variant i: val_acc 0.5 + 0.1 i, test_acc 0.4 + 0.1 i): its config and its ``ablation.db``."""
    from nas_harness._config import read_toml
    from nas_harness.ablation.config import parse_ablation
    from nas_harness.ablation.runner import AblationStore
    from nas_harness.records import TrialRecord

    (tmp_path / "a.toml").write_text(tiny_ablation(seeds=2))
    raw = read_toml(tmp_path / "a.toml")
    raw.setdefault("run", {})["results_dir"] = str(tmp_path / "results")
    cfg = parse_ablation(raw)
    store = AblationStore(cfg.storage_url, cfg.name)
    store.bind(cfg)
    for seed in cfg.seeds:
        for i, (variant, arch) in enumerate(cfg.archs.items()):
            rec = TrialRecord(arch=str(arch), val_acc=0.5 + 0.1 * i, val_n=64, test_acc=0.4 + i * 0.1, test_n=64,
                              macs=1000, params=100, full_budget=True)
            store.add(variant, seed, rec, None)
    return cfg, tmp_path / "results" / "tiny" / "ablation.db"
