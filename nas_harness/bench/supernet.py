"""``supernet`` suite: the weight-sharing supernet at the quickstart's space and data (studies/quickstart.toml).

For uniform sampling and for the sandwich rule: train the supernet once (wall time), score 1,000 uniformly
sampled subnets with inherited weights through the trial function (subnets per minute; targets: training +
1,000 evaluations <= 15 min, >= 100 subnets/min on a 2-core CPU), then audit the ranking: the top K subnets by
inherited-weight accuracy plus K drawn stratified by MACs are trained from scratch with the study's recipe, and
Kendall tau / Spearman rho (bootstrap intervals over archs), top-K recall and regret are reported for the
supernet and for MACs alone, with the paired-bootstrap interval of tau(supernet) - tau(MACs).  ``--quick``: 2
supernet epochs, 60 subnets, K = 3.  The supernet's lr is :data:`LR` (the recipe's is too small for it).
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

from nas_harness.bench import Suite

_QUICKSTART = Path(__file__).resolve().parents[2] / "studies" / "quickstart.toml"
#: [supernet] lr of the suite: the quickstart recipe's 0.004 leaves the supernet near chance (docs/supernet.md).
LR = 0.02


def _config(results: Path, sampling: str, epochs: float, threads: int, lr: float | None) -> Any:
    from nas_harness.study.config import load_study

    return load_study(_QUICKSTART, {"run.results_dir": str(results), "train.threads": threads,
                                    "evaluator.kind": "supernet", "supernet.epochs": epochs,
                                    "supernet.sampling": sampling, "supernet.lr": lr})


def measure(sampling: str, epochs: float, n_eval: int, k: int, results: Path, trained: dict[str, float],
            threads: int = 1, lr: float | None = None, log: Any = None) -> dict[str, Any]:
    """Train the quickstart's supernet (``sampling``, ``epochs``, ``lr``: None = the recipe's), score ``n_eval``
    sampled subnets, and audit the ranking on the top ``k`` + ``k`` MACs-stratified subnets trained from scratch
    (their accuracies are cached in ``trained``, by arch string)."""
    from nas_harness.evaluation.fidelity import audit
    from nas_harness.results.stats import rank_agreement
    from nas_harness.trial import TrialSpec, run_trial

    cfg = _config(results / sampling, sampling, epochs, threads, lr)
    train = cfg.train_config()
    ev = cfg.make_evaluator(train)
    t0 = time.perf_counter()
    ev.prepare(cfg.eval_context(train), log)
    train_s = time.perf_counter() - t0
    space = cfg.search_space()
    rng = random.Random(0)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(n_eval)))

    def spec(arch: Any, evaluator: Any) -> Any:
        return TrialSpec(arch=arch, data=cfg.data, train=train, seed=cfg.seed, stem_stride=cfg.trial.stem_stride,
                         macs_resolution=cfg.trial.macs_resolution, macs_num_classes=cfg.trial.macs_num_classes or 10,
                         evaluator=evaluator)

    run_trial(spec(archs[0], ev))  # loads the supernet into this process (once per worker in a study)
    t1 = time.perf_counter()
    records = [run_trial(spec(a, ev)) for a in archs]
    eval_s = time.perf_counter() - t1
    # the audit's sample: top K by inherited-weight accuracy + K stratified by MACs from the rest
    order = sorted(range(len(archs)), key=lambda i: (-records[i].val_acc, i))
    top, rest = order[:k], sorted(order[k:], key=lambda i: (records[i].macs, i))
    pick_rng = random.Random(1)
    chunks = [rest[j * len(rest) // k:(j + 1) * len(rest) // k] for j in range(k)]
    sample = top + [pick_rng.choice(c) for c in chunks if c]
    for i in sample:
        key = str(archs[i])
        if key not in trained:
            trained[key] = run_trial(spec(archs[i], None)).val_acc
    rows = [{"proxy_val_acc": records[i].val_acc, "hifi_val_acc": trained[str(archs[i])], "macs": records[i].macs,
             "params": records[i].params} for i in sample]
    agreement = rank_agreement([r["proxy_val_acc"] for r in rows], [r["hifi_val_acc"] for r in rows], k)
    vs_macs = audit(rows, k)
    accs = sorted(r.val_acc for r in records)
    return {
        "sampling": sampling, "supernet_epochs": epochs, "supernet_lr": lr or train.lr, "train_s": round(train_s, 1),
        "subnets": len(archs), "eval_s": round(eval_s, 1),
        "subnets_per_min": round(len(archs) / eval_s * 60, 1),
        "train_plus_1000_min": round((train_s + eval_s * 1000 / len(archs)) / 60, 2),
        "inherited_val_acc_min_median_max": [accs[0], accs[len(accs) // 2], accs[-1]],
        "audit_sample": len(sample), "kendall_tau": agreement["kendall_tau"],
        "kendall_tau_ci": agreement["kendall_tau_ci"], "spearman_rho": agreement["spearman_rho"],
        "spearman_rho_ci": agreement["spearman_rho_ci"], "top_k_recall": agreement["top_k_recall"],
        "regret": agreement["regret"], "macs_kendall_tau": vs_macs["macs"]["kendall_tau"],
        "macs_kendall_tau_ci": vs_macs["macs"]["kendall_tau_ci"], "tau_minus_macs": vs_macs["tau_minus_macs"],
        "tau_minus_macs_ci": vs_macs["tau_minus_macs_ci"], "verdict_vs_macs": vs_macs["verdict_vs_macs"],
    }


def run(quick: bool) -> dict[str, Any]:
    import os
    import sys

    threads = 1  # one intra-op thread per process: the number a study's workers use on a shared 2-core box

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    out: dict[str, Any] = {"study": "studies/quickstart.toml", "threads": threads,
                           "load_average_1min_start": os.getloadavg()[0]}
    trained: dict[str, float] = {}  # from-scratch accuracies, shared by the two audits
    with tempfile.TemporaryDirectory() as tmp:
        for sampling in ("uniform", "sandwich"):
            epochs, n_eval, k = (2.0, 60, 3) if quick else (10.0, 1000, 6)
            out[sampling] = measure(sampling, epochs, n_eval, k, Path(tmp), trained, threads, LR, log)
            log(f"supernet {sampling}: {out[sampling]}")
    out["load_average_1min_end"] = os.getloadavg()[0]
    out["from_scratch_runs"] = len(trained)
    out["targets_met"] = {s: bool(out[s]["subnets_per_min"] >= 100 and out[s]["train_plus_1000_min"] <= 15)
                          for s in ("uniform", "sandwich")}
    return out


SUITE = Suite("supernet", "supernet training + 1,000 inherited-weight evaluations and the ranking audit "
                          "(quickstart space and data)", run)
