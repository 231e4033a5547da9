"""``latency`` suite: how well the lookup table predicts measured end-to-end latency, and how well MACs do.

On random archs of the default space (EfficientNet-B0's stages; kernels 3/5/7, expansions 1/3/4/6, SE on/off,
repeats ±1) at 224 px, batch 1, on this CPU with one thread: a fresh table is built for the whole space, the
per-network overhead is fitted on a few *other* archs, then every arch is predicted from the table and measured
end to end.  Reported: Spearman rho of predicted vs measured (target >= 0.95), the median absolute relative
error (target <= 10 %), Spearman rho of MACs vs measured latency for comparison, the same against the wall
clock, equal-MAC pairs with different latency, and what a prediction costs next to a measurement.

The table entries, the fit networks and the evaluated networks are measured in ONE set of interleaved rounds
(:meth:`~nas_harness.latency.LatencyPredictor.build`), each item's fastest round kept: this VM's speed drifts
by tens of percent over minutes, and a table built minutes before the networks are measured carries that
drift into every figure (``round_spread``: the median ratio of an evaluated network's slowest to fastest round).
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from nas_harness._config import RESULTS_DIR
from nas_harness.bench import Suite

TABLE_DIR = Path(RESULTS_DIR) / "bench" / "latency-table"


def ranks(values: list[float]) -> list[float]:
    """Ranks 1..n, ties given their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def pearson(x: list[float], y: list[float]) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else float("nan")


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (Pearson on average ranks)."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("spearman: two lists of the same length >= 2 are needed")
    return pearson(ranks(x), ranks(y))


def median_abs_rel_err(pred: list[float], meas: list[float]) -> float:
    return statistics.median(abs(p - m) / m for p, m in zip(pred, meas))


def _equal_mac_pairs(rows: list[dict[str, Any]], tolerance: float = 0.05) -> dict[str, Any]:
    """Pairs whose MACs are within ``tolerance`` of each other: the largest measured latency ratio among them."""
    best: dict[str, Any] = {"pairs": 0, "max_latency_ratio": None}
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            if abs(a["macs"] - b["macs"]) <= tolerance * max(a["macs"], b["macs"]):
                best["pairs"] += 1
                slow, fast = (a, b) if a["measured_ms"] >= b["measured_ms"] else (b, a)
                ratio = slow["measured_ms"] / fast["measured_ms"]
                if best["max_latency_ratio"] is None or ratio > best["max_latency_ratio"]:
                    best.update(max_latency_ratio=ratio, slower=slow["arch"], faster=fast["arch"],
                                slower_macs=slow["macs"], faster_macs=fast["macs"],
                                slower_ms=slow["measured_ms"], faster_ms=fast["measured_ms"])
    best["mac_tolerance"] = tolerance
    return best


def run(quick: bool) -> dict[str, Any]:
    import torch

    from nas_harness.space import SearchSpace

    n_archs, n_fit, repeats = (10, 4, 10) if quick else (60, 12, 20)
    folder = TABLE_DIR / ("quick" if quick else "full")
    res = evaluate_predictor(SearchSpace.default(), folder, n_archs=n_archs, n_fit=n_fit, repeats=repeats)
    if torch.cuda.is_available():  # the same figures on the first GPU (CUDA events), next to the CPU's
        res["cuda"] = evaluate_predictor(SearchSpace.default(), folder / "cuda", n_archs=n_archs, n_fit=n_fit,
                                         repeats=repeats, device="cuda:0")
    return res


def evaluate_predictor(space: Any, table_dir: Path, n_archs: int = 60, n_fit: int = 12, repeats: int = 20,
                       warmup: int = 5, resolution: int = 224, num_classes: int = 1000,
                       device: str = "cpu") -> dict[str, Any]:
    """Build a fresh table for ``space`` in ``table_dir``, fit the overhead on ``n_fit`` archs, and compare
    predictions with end-to-end measurements of ``n_archs`` other archs (the suite's figures); on the CPU with
    one thread, on CUDA with events."""
    from nas_harness.flops import count_macs
    from nas_harness.latency import LatencyConfig, LatencyPredictor, space_keys
    from nas_harness.latency.measure import clock_for

    if space.size < n_archs + n_fit:
        from nas_harness.errors import ConfigError

        raise ConfigError(f"latency bench: the space has {space.size} archs, fewer than {n_archs} + {n_fit} needed")
    load_start = os.getloadavg()[0]
    shutil.rmtree(table_dir, ignore_errors=True)  # a fresh table: the figures are of a table built now
    settings = LatencyConfig(device=device, batch=1, repeats=repeats, warmup=warmup,
                             table=str(table_dir)).settings(resolution, num_classes)
    predictor = LatencyPredictor(settings)

    rng = random.Random(0)
    archs, seen = [], set()
    while len(archs) < n_archs:
        a = space.sample(rng)
        if str(a) not in seen:
            seen.add(str(a))
            archs.append(a)
    fit_rng = random.Random(10_000)
    fit_archs = []
    while len(fit_archs) < n_fit:
        a = space.sample(fit_rng)
        if str(a) not in seen:
            seen.add(str(a))
            fit_archs.append(a)

    # One set of interleaved rounds over the whole table, the fit networks and the evaluated networks: this VM's
    # speed drifts over minutes, and measuring them in separate phases would add that drift to the figures.
    t0 = time.perf_counter()
    keys = space_keys(space, settings)
    fit, measured = predictor.build(keys, fit_archs=fit_archs, extra_archs=archs, keep=False)
    assert fit is not None
    build_s = time.perf_counter() - t0

    predict_s = []
    preds = []
    for a in archs:
        t0 = time.perf_counter()
        preds.append(predictor.predict(a, fill=False))
        predict_s.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    predictor.measure(archs[0])  # what measuring one network costs (build, warm-up, rounds)
    measure_s = [time.perf_counter() - t0]
    rows = [{"arch": str(a), "macs": count_macs(a, resolution, num_classes=num_classes).total,
             "predicted_ms": p.total_ms, "sum_of_entries_ms": p.blocks_ms, "measured_ms": m.median_ms,
             "iqr_ms": m.iqr_ms, "wall_ms": m.wall_median_ms, "round_ms": list(m.round_medians_ms)}
            for a, p, m in zip(archs, preds, measured)]

    pred = [r["predicted_ms"] for r in rows]
    meas = [r["measured_ms"] for r in rows]
    wall = [r["wall_ms"] for r in rows]
    sums = [r["sum_of_entries_ms"] for r in rows]
    macs = [float(r["macs"]) for r in rows]
    t_pred, t_meas = statistics.median(predict_s), statistics.median(measure_s)
    return {
        "spearman_rho": spearman(pred, meas),
        "median_abs_rel_err": median_abs_rel_err(pred, meas),
        "macs_spearman_rho": spearman(macs, meas),
        "n_archs": len(rows),
        "targets": {"spearman_rho": ">= 0.95", "median_abs_rel_err": "<= 0.10"},
        "unfitted": {"spearman_rho": spearman(sums, meas), "median_abs_rel_err": median_abs_rel_err(sums, meas)},
        "wall_clock": {"spearman_rho": spearman(pred, wall), "median_abs_rel_err": median_abs_rel_err(pred, wall),
                       "macs_spearman_rho": spearman(macs, wall),
                       "median_wall_over_cpu": statistics.median(w / c for w, c in zip(wall, meas))},
        "equal_macs": _equal_mac_pairs(rows),
        "prediction_s": t_pred, "measurement_s": t_meas, "measurement_over_prediction": t_meas / t_pred,
        "table_entries": len(keys), "fit_networks": n_fit, "build_and_measure_s": build_s,
        "round_spread": statistics.median(max(r["round_ms"]) / min(r["round_ms"]) for r in rows),
        "fit": {k: v for k, v in fit.items() if k != "networks"},
        "settings": {**settings.comparable(), "repeats": settings.repeats, "warmup": settings.warmup,
                     "rounds": settings.rounds,
                     "clock": clock_for(settings.device, settings.threads),
                     "memory_format": predictor.table.memory_format,
                     "memory_format_trial_ms": predictor.table.memory_format_trial},
        "device": str(predictor.fingerprint), "fingerprint_id": predictor.fingerprint.id,
        "table": str(predictor.table.path),
        "load_average_1min_start": load_start, "load_average_1min_end": os.getloadavg()[0],
        "rows": rows,
    }


SUITE = Suite("latency", "latency table predictor vs measured end-to-end latency (and MACs) on random archs", run)
