"""``nas-harness fidelity``: does the search's proxy rank architectures the way longer training does?

A search trusts its proxy (a few epochs on a small subset at low resolution) to *rank* archs.  This command
retrains some of the search's archs -- the proxy's top K and K others drawn at random (seeded) from the rest,
so the measured correlation is not only about the top -- at a higher-fidelity recipe (more epochs, more data,
a larger resolution: the ``[fidelity]`` table or flags), and reports how well the proxy's single-run
validation accuracy ranked them against the high-fidelity validation accuracy:

- Kendall's tau-b and Spearman's rho with percentile-bootstrap 95 % intervals over the archs
  (:func:`nas_harness.results.stats.rank_agreement`; with 8 archs these intervals are wide, and they say so);
- top-K recall (how many of the K truly best the proxy put in its top K) and the regret of the proxy's
  choice (high-fidelity accuracy of the truly best arch minus that of the proxy's best);
- each cheap predictor -- parameters, MACs and the training-free scores of
  :mod:`~nas_harness.evaluation.zero_cost` -- judged the same way, against both the proxy and the
  high-fidelity accuracy.

Selection and the high-fidelity score both use validation accuracy; ``evaluate_test`` adds the test split
to the per-arch table only.  Runs are stored one trial per (arch, seed) in the study's storage as study
``<study>-<name>`` (``name`` defaults to ``fidelity``), resumable like ``confirm``; another high-fidelity
recipe needs another ``name``.  A "high fidelity" that trains no more than the search in any respect
(training images, optimiser steps, images seen, resolution) is refused, one cheaper in some respect is named in
a warning (:func:`check_fidelity`).  A study whose storage cannot be written stores its runs in
``out_dir``/runs.db.

The ``[fidelity]`` table (a TOML file passed with ``--config``; flags override it)::

    [fidelity]
    top = 4              # the proxy's best K archs ...
    random = 4           # ... and K more drawn at random (seeded) from the other search archs
    seeds = 1            # high-fidelity runs per arch (their mean is the high-fidelity score)
    seed = 0             # the random draw and the bootstrap
    epochs_factor = 5    # multiply the search's budget (default: 5 when nothing below is given)
    [fidelity.train]     # keys of [train] to change, e.g. epochs = 10 (then epochs_factor does not apply)
    [fidelity.data]      # keys of [data] to change, e.g. train_subset = 20000, val_size = 5000
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from nas_harness._config import (
    Bool,
    ConfigModel,
    Int,
    Name,
    Num,
    Rules,
    bad,
    check_outputs,
    inert,
    read_toml,
    write_output,
    write_text,
)
from nas_harness.backends.settings import RayConfig
from nas_harness.errors import ConfigError
from nas_harness.evaluation.recipe import Candidate, StudyRecipe, open_study_source, study_evaluator, study_recipe
from nas_harness.evaluation.store import StoredRun, open_job_store, retrain_candidates
from nas_harness.results.stats import (
    ACCURACY,
    accuracy_interval,
    difference_words,
    kendall_tau,
    kendall_tau_difference,
    rank_agreement,
    summarize,
    verdict,
)

__all__ = ["FidelityConfig", "FidelityResult", "analyze_fidelity", "check_fidelity", "load_fidelity",
           "run_fidelity", "select_archs", "write_fidelity"]

if TYPE_CHECKING:  # pragma: no cover
    from nas_harness.report.document import Block

_FIXED_TRAIN = ("seed",)


class FidelityConfig(ConfigModel):
    """``[fidelity]``: which archs to retrain and the higher-fidelity recipe (changes to the study's)."""

    top: Annotated[Int, Field(ge=1, le=1000, description="the proxy's best K search archs")] = 4
    random: Annotated[Int, Field(ge=0, le=1000, description="more search archs drawn at random from the rest")] = 4
    references: Annotated[Bool, Field(description="also retrain the study's reference archs")] = False
    seeds: Annotated[Int, Field(ge=1, le=100, description="high-fidelity runs per arch (seeds from the study's)")] = 1
    seed: Annotated[Int, Field(ge=0, le=2**32 - 1, description="seeds the random draw and the bootstrap")] = 0
    epochs_factor: Annotated[Num | None, Field(ge=1, le=1000, description=(
        "multiply the search's epochs/steps (default 5 when neither [fidelity.train] epochs/steps nor "
        "[fidelity.data] is given); applies only when [fidelity.train] sets no epochs or steps"))] = None
    train: Annotated[dict[str, Any], Field(description="keys of [train] to change")] = Field(default_factory=dict)
    data: Annotated[dict[str, Any], Field(description="keys of [data] to change")] = Field(default_factory=dict)
    evaluate_test: Annotated[Bool, Field(description="also measure the test split (reported only)")] = False
    zero_cost: Annotated[Bool, Field(description="judge the training-free predictors too")] = True
    zero_cost_batch: Annotated[Int, Field(ge=2, le=4096, description="batch size of NASWOT and grad_norm")] = 64
    bootstrap: Annotated[Int, Field(ge=100, le=1_000_000, description="bootstrap resamples of the intervals")] = 2000
    name: Annotated[Name, Field(description="runs are stored as study <study>-<name>")] = "fidelity"
    against: Annotated[Name, Field(description=(
        "the evaluator of the high-fidelity side: 'train' (from scratch with the recipe above) or another "
        "evaluator kind (e.g. 'table'), whose options go in [fidelity.options]"))] = "train"
    options: Annotated[dict[str, Any], Field(description="applies with against other than 'train' only: the "
                                                         "evaluator's options")] = Field(default_factory=dict)
    stratify: Annotated[Literal["auto", "macs", "none"], Field(description=(
        "how the random archs are drawn from the rest: macs = one from each of `random` equal-count MACs bins "
        "(stratified), none = uniformly; auto = macs for a study scored by another evaluator than 'train' "
        "(e.g. a supernet), none otherwise"))] = "auto"

    _inert: ClassVar[Rules] = inert(epochs_factor=lambda t: "epochs" in t.train or "steps" in t.train,
                                    options=lambda t: t.against == "train")

    @model_validator(mode="after")
    def _keys(self) -> FidelityConfig:
        from nas_harness.data import ProxyConfig
        from nas_harness.train import TrainConfig

        for key in self.train:
            if key not in TrainConfig.model_fields:
                raise bad(f"train.{key}", f"unknown key; allowed keys: {', '.join(TrainConfig.model_fields)}")
            if key in _FIXED_TRAIN:
                raise bad(f"train.{key}", "is set per run from fidelity.seeds; remove it")
        for key in self.data:
            if key not in ProxyConfig.model_fields:
                raise bad(f"data.{key}", f"unknown key; allowed keys: {', '.join(ProxyConfig.model_fields)}")
        from nas_harness.evaluators import EvaluatorConfig

        try:
            EvaluatorConfig(kind=self.against, options=dict(self.options))
        except ConfigError as exc:
            raise bad("against", str(exc).replace("evaluator.kind: ", "").replace("{", "{{").replace("}", "}}")
                      ) from None
        return self

    def factor(self) -> float:
        if "epochs" in self.train or "steps" in self.train or self.against != "train":
            return 1.0
        if self.epochs_factor is not None:
            return float(self.epochs_factor)
        return 1.0 if self.data else 5.0

    def high_fidelity(self, proxy: StudyRecipe, scored_by: str = "train") -> StudyRecipe:
        """The study's recipe with this table's changes; refuses one that equals the proxy's (unless the study's
        values came from another evaluator, ``scored_by``: training from scratch with the study's own recipe is
        then a different measurement)."""
        train = dict(self.train)
        f = self.factor()
        if f != 1.0:
            t = proxy.train
            if t.epochs is not None:
                train["epochs"] = float(t.epochs) * f
            else:
                train["steps"] = int(round(int(t.steps or 1) * f))
        hifi = proxy.with_fidelity(dict(self.data), train)
        if self.against != "train":
            from nas_harness.evaluators import EvaluatorConfig

            ev = EvaluatorConfig(kind=self.against, options=dict(self.options))
            hifi = hifi.with_evaluator(ev.make(hifi.eval_context()))
        if hifi.to_dict() == proxy.to_dict() and scored_by == "train":
            raise ConfigError("fidelity: the high-fidelity recipe equals the search's; give more epochs, data or "
                              "resolution (fidelity.train / fidelity.data / epochs_factor)")
        return hifi


_PLANNED = {"images": "training images", "steps": "optimiser steps", "seen": "images seen (steps x batch)",
            "resolution": "resolution (px)"}


def check_fidelity(proxy: StudyRecipe, hifi: StudyRecipe, scored_by: str = "train",
                   study_evaluator: dict[str, Any] | None = None, refuse: bool = True) -> str | None:
    """Is ``hifi`` a higher fidelity than the side it judges?  None when it is (or when no rule applies), a
    one-line warning when it is cheaper in some respect; a ConfigError (``refuse``; else the warning) when its
    verdicts could mean nothing.

    Both sides train from scratch (a study scored by ``train``, ``--against train``): the cost of a run is what
    :meth:`StudyRecipe.planned` counts -- distinct training images, planned optimiser steps, images seen (steps x
    batch) and the resolution.  Larger in none of them and smaller in one: refused (a cheaper recipe cannot
    judge the proxy).  Equal in all (another lr, optimiser, augmentation, ... at the same cost): a warning, the
    comparison is of two recipes, not of two fidelities.  Larger in some, smaller in others: a warning naming the
    smaller ones.  A study scored by another evaluator (supernet, table, surrogate) judged by training from
    scratch: a warning when the recipe trains less than the study's own (the supernet's inherited weights stand
    in for that recipe).  The high side another evaluator (``--against table``, ...): refused when it is the
    study's own evaluator with the same settings (``study_evaluator``: the study's ``[evaluator]`` as stored in
    its ``comparable`` attribute; both sides would give the same numbers); the tables' ImageNet accuracies have
    no recipe to compare."""
    from nas_harness.evaluation.store import _changed

    def verdict(msg: str) -> str:
        if refuse:
            raise ConfigError(msg)
        return f"warning: {msg}"

    if hifi.evaluator is not None and hifi.evaluator.kind != "train":
        if hifi.evaluator.kind != scored_by or not isinstance(study_evaluator, dict):
            return None
        from nas_harness.evaluators import EvaluatorConfig

        try:
            own = EvaluatorConfig(**study_evaluator).make(proxy.eval_context())
        except (ConfigError, TypeError):
            return None  # a stored table this version cannot build: no rule to apply
        same_data = not getattr(hifi.evaluator, "uses_data", True) or (
            {k: v for k, v in hifi.to_dict().items() if k != "evaluator"} == proxy.to_dict())
        if own.identity() == hifi.evaluator.identity() and same_data:
            return verdict(f"fidelity: --against {hifi.evaluator.kind} is the study's own evaluator with the same "
                           "settings: both sides would give the same numbers, so the verdicts would mean nothing; "
                           "choose another evaluator or other options (fidelity.options)")
        return None
    p, h = proxy.planned(), hifi.planned()
    smaller = [f"{_PLANNED[k]} {h[k]:,} < {p[k]:,}" for k in _PLANNED if h[k] < p[k]]
    larger = [k for k in _PLANNED if h[k] > p[k]]
    if scored_by != "train":
        if not smaller:
            return None
        return (f"warning: fidelity: the from-scratch recipe trains less than the study's own recipe "
                f"({', '.join(smaller)}), which the study's evaluator {scored_by!r} stands in for: its verdicts judge "
                "the evaluator against a lower fidelity than the study's")
    if smaller and not larger:
        return verdict(f"fidelity: the high-fidelity recipe is cheaper than the search's ({', '.join(smaller)}) and "
                       "larger in nothing: it cannot judge the search's proxy; give more epochs, steps, data or "
                       "resolution (fidelity.train / fidelity.data / epochs_factor)")
    if smaller:
        return (f"warning: fidelity: the high-fidelity recipe is cheaper than the search's in {', '.join(smaller)}: "
                "its verdicts mix a higher and a lower fidelity")
    if not larger:
        changed = _changed(proxy.to_dict(), {k: v for k, v in hifi.to_dict().items() if k != "evaluator"})
        return (f"warning: fidelity: the high-fidelity recipe trains on as many images, for as many steps, at the "
                f"same resolution as the search's (only {', '.join(changed) or 'the evaluator'} changed): its verdicts "
                "compare two recipes of the same cost, not two fidelities")
    return None


def load_fidelity(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> FidelityConfig:
    """The ``[fidelity]`` table of a TOML file (or defaults), with ``overrides`` (dotted keys; None skipped)."""
    d: dict[str, Any] = {}
    if path is not None:
        raw = read_toml(path, "fidelity file")
        other = [k for k in raw if k != "fidelity"]
        if other:
            raise ConfigError(f"{other[0]}: unknown key; a fidelity file holds one [fidelity] table")
        d = raw.get("fidelity", {})
        if not isinstance(d, dict):
            raise ConfigError("fidelity: expected a table")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, last = dotted.split(".")
        node = d
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return FidelityConfig.from_dict(d, "fidelity")


def select_archs(df: Any, cfg: FidelityConfig, stratified: bool = False) -> list[Candidate]:
    """The proxy's top K search archs (by validation accuracy), K more drawn at random (seeded) from the rest,
    and the references when asked; each arch once.  ``stratified``: the random ones are one from each of K
    equal-count bins of the rest sorted by MACs, so small and large archs are both in the sample."""
    from nas_harness.evaluation.recipe import merge_candidates, reference_candidates, search_candidates

    ranked = search_candidates(df, 10**9, "val_acc")
    top = ranked[: cfg.top]
    rest = ranked[cfg.top:]
    rng = np.random.default_rng(cfg.seed)
    pick = sorted(rng.choice(len(rest), size=min(cfg.random, len(rest)), replace=False).tolist()) if rest else []
    if stratified and rest and cfg.random:
        by_macs = sorted(range(len(rest)), key=lambda i: (_num(rest[i].macs), i))
        bins = np.array_split(np.asarray(by_macs), min(cfg.random, len(rest)))
        pick = sorted(int(rng.choice(b)) for b in bins if len(b))
    chosen = top + [rest[i] for i in pick]
    if cfg.references:
        chosen += reference_candidates(df)
    return merge_candidates(chosen)


@dataclass
class FidelityResult:
    study_name: str
    store_name: str
    proxy: StudyRecipe
    hifi: StudyRecipe
    config: FidelityConfig
    archs: list[dict[str, Any]]
    summary: dict[str, Any]
    ran: list[tuple[str, int]]
    skipped: list[tuple[str, int]]
    failed: list[StoredRun]
    wall_s: float
    out_dir: Path
    outputs: list[Path] = field(default_factory=list)


def _ranks(values: list[float]) -> list[float]:
    """1 = highest; ties share the smallest rank; NaN stays NaN."""
    from scipy.stats import rankdata

    x = np.asarray(values, dtype=float)
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(x)
    if ok.any():
        out[ok] = rankdata(-x[ok], method="min")
    return out.tolist()


def analyze_fidelity(cands: list[Candidate], runs: list[StoredRun], seeds: list[int], top: int,
                     predictors: dict[str, dict[str, float]] | None = None, n_resamples: int = 2000,
                     seed: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-arch rows and the summary (rank agreement of the proxy and of every predictor)."""
    wanted = set(seeds)
    rows = []
    for i, c in enumerate(cands):
        mine = [r for r in runs if r.group == c.job and r.state == "ok" and r.seed in wanted
                and r.metrics.get("val_acc") is not None]
        vals = [float(r.metrics["val_acc"]) for r in mine]
        finals = [float(r.metrics["val_acc_final"]) for r in mine if r.metrics.get("val_acc_final") is not None]
        tests = [float(r.metrics["test_acc"]) for r in mine if r.metrics.get("test_acc") is not None]
        s = summarize(vals, bounds=ACCURACY)
        if s.n == 1:  # one run: the interval of its split
            lo, hi = accuracy_interval(vals[0], mine[0].metrics.get("val_n"))
        else:
            lo, hi = s.ci_low, s.ci_high
        plo, phi = accuracy_interval(c.search_val, c.search_val_n)
        rows.append({"label": c.name, "kind": c.kind, "search_trial": c.number, "arch": c.arch, "macs": c.macs,
                     "params": c.params, "proxy_val_acc": c.search_val, "proxy_ci_low": plo, "proxy_ci_high": phi,
                     "hifi_val_acc": s.mean, "hifi_ci_low": lo, "hifi_ci_high": hi, "hifi_runs": s.n,
                     "hifi_val_acc_final": float(np.mean(finals)) if finals else math.nan,
                     "hifi_test_acc": float(np.mean(tests)) if tests else math.nan,
                     "hifi_train_s": float(sum(float(r.metrics.get("train_time_s") or 0) for r in mine)),
                     "proxy_top_k": i < top and c.kind == "search"})
    proxy = [r["proxy_val_acc"] for r in rows]
    hifi = [r["hifi_val_acc"] for r in rows]
    for r, pr, hr in zip(rows, _ranks(proxy), _ranks(hifi)):
        r["proxy_rank"], r["hifi_rank"] = pr, hr
    k = min(top, len(rows))
    summary = rank_agreement(proxy, hifi, k, n_resamples=n_resamples, seed=seed)
    # robustness: the same against the last epoch's accuracy instead of the best epoch's (the harness's val_acc)
    final = rank_agreement(proxy, [r["hifi_val_acc_final"] for r in rows], k, n_resamples=n_resamples, seed=seed)
    summary["final_epoch"] = {key: final[key] for key in ("kendall_tau", "kendall_tau_ci", "spearman_rho",
                                                            "top_k_recall", "n_archs")}
    ok = [r for r in rows if math.isfinite(r["hifi_val_acc"])]
    if ok:
        choice = max(ok, key=lambda r: r["proxy_val_acc"])
        best = max(ok, key=lambda r: r["hifi_val_acc"])
        summary.update(proxy_choice=choice["label"], proxy_choice_hifi=choice["hifi_val_acc"],
                       hifi_best=best["label"], hifi_best_acc=best["hifi_val_acc"])
    preds: dict[str, Any] = {}
    if predictors:
        for r in rows:
            r.update({f"pred_{n}": v for n, v in predictors.get(r["arch"], {}).items()})
        names = list(next(iter(predictors.values())).keys()) if predictors else []
        for n in names:
            score = [predictors.get(r["arch"], {}).get(n, math.nan) for r in rows]
            vs_hifi = rank_agreement(score, hifi, k, n_resamples=n_resamples, seed=seed)
            vs_proxy = rank_agreement(score, proxy, k, n_resamples=0, seed=seed)
            preds[n] = {"vs_high_fidelity": {key: vs_hifi[key] for key in (
                "kendall_tau", "kendall_tau_ci", "spearman_rho", "spearman_rho_ci", "top_k_recall", "regret",
                "n_archs")}, "vs_proxy": {key: vs_proxy[key] for key in ("kendall_tau", "spearman_rho",
                                                                          "n_archs")}}
    summary["predictors"] = preds
    return rows, summary


#: MACs buckets (equal-count) in which the audit measures the ranking within similar cost.
MACS_BUCKETS = 3


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def audit(rows: list[dict[str, Any]], top: int, n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Does the proxy rank the archs better than their cost alone?  MACs and params as predictors of the
    high-fidelity accuracy (tau, rho, top-k recall, regret), the proxy's Kendall tau within equal-count MACs
    buckets (does it rank archs of similar cost, where MACs cannot), and the paired-bootstrap interval of
    tau(proxy) - tau(MACs) over archs with its verdict ('beats', 'tied within noise', 'worse')."""
    proxy = [_num(r["proxy_val_acc"]) for r in rows]
    hifi = [_num(r["hifi_val_acc"]) for r in rows]
    macs = [_num(r["macs"]) for r in rows]
    params = [_num(r["params"]) for r in rows]
    k = min(top, len(rows))
    out: dict[str, Any] = {"macs": rank_agreement(macs, hifi, k, n_resamples=n_resamples, seed=seed),
                           "params": rank_agreement(params, hifi, k, n_resamples=n_resamples, seed=seed)}
    order = sorted((i for i in range(len(rows)) if math.isfinite(macs[i])), key=lambda i: (macs[i], i))
    buckets = []
    for b in np.array_split(np.asarray(order, dtype=int), min(MACS_BUCKETS, max(1, len(order)))):
        idx = [int(i) for i in b]
        if not idx:
            continue
        t = kendall_tau([proxy[i] for i in idx], [hifi[i] for i in idx], n_resamples=n_resamples, seed=seed)
        buckets.append({"macs_low": macs[idx[0]], "macs_high": macs[idx[-1]], "n_archs": t.n,
                        "kendall_tau": None if not math.isfinite(t.statistic) else t.statistic,
                        "kendall_tau_ci": [None if not math.isfinite(v) else v for v in (t.low, t.high)]})
    out["macs_buckets"] = buckets
    d = kendall_tau_difference(proxy, macs, hifi, n_resamples=n_resamples, seed=seed)
    ci = [None if not math.isfinite(v) else v for v in (d.low, d.high)]
    out["tau_minus_macs"] = None if not math.isfinite(d.statistic) else d.statistic
    out["tau_minus_macs_ci"] = ci
    out["verdict_vs_macs"] = verdict(d.low, d.high)
    return out


def run_fidelity(source: str | Path, cfg: FidelityConfig | None = None, *, study_name: str | None = None,
                 out_dir: str | Path | None = None, backend: str = "local", ray: RayConfig | None = None,
                 retry_failed: bool = False, progress: bool = True, figure: bool = True,
                 report_only: bool = False, log: Any = None, on_record: Any = None,
                 workers: int = 1) -> FidelityResult:
    """Retrain the selected archs at the higher fidelity (resuming), then measure the proxy's ranking and the
    cheap predictors'; write ``fidelity.json``, ``fidelity.md``, ``fidelity_archs.csv`` and the figure."""
    from nas_harness.data import load_proxy
    from nas_harness.results import trials_frame

    cfg = cfg or FidelityConfig()
    ray = ray or RayConfig()
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    src, study, runs_at = open_study_source(source, study_name, out_dir=out_dir, what="fidelity")
    proxy = study_recipe(study)
    scored_by = study_evaluator(study)
    hifi = cfg.high_fidelity(proxy, scored_by)
    proxy_text = proxy.describe() if scored_by == "train" else f"the study's evaluator {scored_by!r}"
    df = trials_frame(study)
    stratified = cfg.stratify == "macs" or (cfg.stratify == "auto" and scored_by != "train")
    cands = select_archs(df, cfg, stratified)
    if len(cands) < 2:
        raise ConfigError(f"study {src.study_name!r} has {len(cands)} complete full-budget search arch(s); a ranking "
                          "needs at least 2")
    out = Path(out_dir) if out_dir is not None else src.out_dir
    stem = cfg.name if cfg.name.startswith("fidelity") else f"fidelity-{cfg.name}"
    check_outputs([out / f"{stem}{end}" for end in (".json", ".md", "_archs.csv", ".png", ".svg")],
                  "--out" if out_dir is not None else "output")
    seeds = [proxy.seed + i for i in range(cfg.seeds)]
    load_proxy(hifi.data)  # a data set or split that cannot be made is one line (exit 2) before any training
    comparable = study.user_attrs.get("comparable")
    note = check_fidelity(proxy, hifi, scored_by, comparable.get("evaluator") if isinstance(comparable, dict) else None,
                          refuse=not report_only)  # a cheaper "high fidelity" is refused before anything is written
    if note:
        say(note)
    if hifi.evaluator is not None:
        hifi.evaluator.prepare(hifi.eval_context(out), say)
    from nas_harness.backends.resources import check_resources

    check_resources(SimpleNamespace(run=SimpleNamespace(backend=backend), ray=ray, train=hifi.train))
    store = open_job_store(src, runs_at, f"{src.study_name}-{cfg.name}", "fidelity", say,
                           report_only)
    jobs = retrain_candidates(
        store, cands, seeds, hifi, lambda c, s: hifi.spec(c.arch, s, evaluate_test=cfg.evaluate_test),
        bind={"recipe": hifi.to_dict(), "kind": "fidelity",
              "attrs": {"source_study": src.study_name, "proxy_recipe": proxy.to_dict()}, "what": "high-fidelity runs"},
        announce=lambda n, n_done: (f"fidelity {src.study_name}: {len(cands)} arch(s) (top {min(cfg.top, len(cands))} "
                                    f"by the proxy + random others) x {len(seeds)} seed(s) = {n} runs; {n_done} "
                                    f"stored, {n - n_done} to run ({backend}); proxy: {proxy_text}; high "
                                    f"fidelity: {hifi.describe()}; storage {runs_at.label} study {store.name!r}"),
        detail=lambda c, m: (f"high-fidelity val {m.get('val_acc', math.nan):.4f} (proxy {c.search_val:.4f}; "
                             f"{m.get('train_time_s', 0.0):.0f} s train)"),
        report_only=report_only, backend=backend, ray=ray, retry_failed=retry_failed, progress=progress,
        checkpoint_dir=out / "checkpoints", on_record=on_record, log=say, workers=workers)
    runs, ran, skipped = jobs.runs, jobs.ran, jobs.skipped
    predictors = None
    zc_s = 0.0
    if cfg.zero_cost:
        from nas_harness.evaluation.zero_cost import zero_cost_scores

        data = load_proxy(proxy.data)
        threads = proxy.train.threads if isinstance(proxy.train.threads, int) else 1
        tz = time.perf_counter()
        predictors = {c.arch: zero_cost_scores(c.arch, data, stem_stride=proxy.trial.stem_stride, seed=proxy.seed,
                                               batch_size=cfg.zero_cost_batch, macs=c.macs, params=c.params,
                                               threads=threads) for c in cands}
        zc_s = time.perf_counter() - tz
    rows, summary = analyze_fidelity(cands, runs, seeds, cfg.top, predictors, cfg.bootstrap, cfg.seed)
    summary["audit"] = audit(rows, cfg.top, cfg.bootstrap, cfg.seed)
    summary["sample"] = "stratified by MACs" if stratified else "uniform"
    summary.update(
        study=src.study_name, store=store.name, seeds=seeds, proxy_recipe=proxy.to_dict(), proxy=proxy_text,
        proxy_evaluator=scored_by,
        high_fidelity_recipe=hifi.to_dict(), high_fidelity=hifi.describe(),
        hifi_train_s=float(sum(float(r.metrics.get("wall_time_s") or 0) for r in runs if r.state == "ok")),
        zero_cost_s=zc_s, ran=len(ran), stored_before=len(skipped), failed=len(jobs.failed),
        confidence=0.95, bootstrap_resamples=cfg.bootstrap, bootstrap_seed=cfg.seed, archs=rows)
    res = FidelityResult(src.study_name, store.name, proxy, hifi, cfg, rows, summary, ran, skipped,
                         jobs.failed, time.perf_counter() - t0, out)
    res.outputs = write_fidelity(res, figure=figure)
    return res


# --------------------------------------------------------------------------- output


def _f(v: Any, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def _ci(ci: Any, digits: int = 2) -> str:
    if not ci or None in ci:
        return ""
    return f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _pct(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * v:.2f}"


def _reading(s: dict[str, Any]) -> str:
    tau, ci = s.get("kendall_tau"), s.get("kendall_tau_ci") or [None, None]
    if tau is None:
        return "No ranking could be measured (fewer than two archs with a high-fidelity result)."
    if None in ci:
        p = s.get("kendall_tau_p")
        test = f" (p = {p:.2g}, scipy exact test)" if p is not None else ""
        return (f"Kendall tau {tau:.2f} on {s['n_archs']} archs{test}: "
                "too few archs for a bootstrap interval, so this is no evidence either way unless p is small; "
                "rank more archs (--top/--random).")
    lo, hi = ci
    if lo > 0:
        strength = "ranks them better than chance"
    elif hi < 0:
        strength = "ranks them in the wrong order more often than not"
    else:
        strength = "cannot be told apart from a random ranking"
    width = ("the interval is wide: more archs would narrow it" if hi - lo > 0.6 else
             "the interval is narrow; it covers sampling of the archs, not the seed noise of each accuracy")
    return f"On these {s['n_archs']} archs the proxy {strength} (tau {tau:.2f} [{lo:.2f}, {hi:.2f}]); {width}."


def _audit_blocks(s: dict[str, Any]) -> list[Block]:
    from nas_harness.report.document import Heading, Para, Table

    a = s.get("audit")
    if not a:
        return []
    who = "the supernet" if s.get("proxy_evaluator") == "supernet" else "the proxy"
    rows = [[who, f"{_f(s['kendall_tau'])}{_ci(s['kendall_tau_ci'])}",
             f"{_f(s['spearman_rho'])}{_ci(s['spearman_rho_ci'])}", _f(s["top_k_recall"]), _pct(s["regret"])]]
    for name in ("macs", "params"):
        m = a[name]
        rows.append([f"{'MACs' if name == 'macs' else 'params'} alone",
                     f"{_f(m['kendall_tau'])}{_ci(m['kendall_tau_ci'])}",
                     f"{_f(m['spearman_rho'])}{_ci(m['spearman_rho_ci'])}", _f(m["top_k_recall"]), _pct(m["regret"])])
    buckets = "; ".join(f"{b['macs_low'] / 1e6:.1f}-{b['macs_high'] / 1e6:.1f} MMACs: tau {_f(b['kendall_tau'])}"
                        f"{_ci(b['kendall_tau_ci'])} (n={b['n_archs']})" for b in a["macs_buckets"])
    d, ci = a["tau_minus_macs"], a["tau_minus_macs_ci"]
    word = {"beats": "ranks better than MACs alone", "worse": "ranks worse than MACs alone"}.get(
        a["verdict_vs_macs"], "cannot be told apart from MACs alone (within noise)")
    n = int(a["macs"].get("n_archs") or 0)
    if d is not None and None not in ci and ci[0] == ci[1]:  # every bootstrap resample gave the same difference
        said = difference_words(d, ci[0], ci[1], n, word, where=f"in every bootstrap resample of the {n} archs")
        word = f"and MACs alone rank the archs alike: {said}" if said.startswith("identical") else said
    if d is not None and None in ci:  # too few archs to resample: a number, no verdict
        verdict = (f"**Verdict:** none: tau({who}) - tau(MACs) = {_f(d)} on {n} archs, too few for a bootstrap "
                   "interval, so it says nothing either way; rank more archs (--top/--random).")
    else:
        verdict = (f"**Verdict:** {who} {word}: tau({who}) - tau(MACs) = {_f(d)}{_ci(ci)} (paired "
                   "percentile-bootstrap 95% interval over archs).")
    return [Heading(f"Audit: {who} against cost alone", 3),
            Para(f"Sample: the top archs and others drawn {s.get('sample', 'uniform')}."),
            Table(["ranker", "Kendall tau [95% CI]", "Spearman rho [95% CI]", "top-k recall", "regret (pp)"], rows),
            Para(f"Within MACs buckets: {buckets or '–'}."),
            Para(verdict)]


def markdown(res: FidelityResult) -> str:
    """``fidelity.md``: the settings, the rank agreement in numbers and words, the cheap predictors, the audit
    against cost alone and the per-arch table."""
    from nas_harness.report.document import Bullets, Heading, Para, Table, to_markdown

    s = res.summary
    k = s.get("top_k", 0)
    final = s.get("final_epoch") or {}
    measures = [
        ["Kendall tau (proxy vs high fidelity)", f"{_f(s['kendall_tau'])}{_ci(s['kendall_tau_ci'])}"],
        ["Spearman rho", f"{_f(s['spearman_rho'])}{_ci(s['spearman_rho_ci'])}"],
        [f"top-{k} recall", _f(s["top_k_recall"])],
        ["Kendall tau against the last epoch's accuracy",
         f"{_f(final.get('kendall_tau'))}{_ci(final.get('kendall_tau_ci'))}"],
        ["regret of the proxy's choice (pp)",
         f"{_pct(s['regret'])} ({s.get('proxy_choice', '–')} at {_pct(s.get('proxy_choice_hifi'))}% vs the best, "
         f"{s.get('hifi_best', '–')} at {_pct(s.get('hifi_best_acc'))}%)"]]
    blocks: list[Block] = [
        Heading(f"Proxy fidelity of `{res.study_name}`"),
        Para(f"Proxy (the search's recipe): {res.proxy.describe()}.  High fidelity: {res.hifi.describe()}.  "
             f"{s['n_archs']} search archs: the proxy's top {k} and {len(res.archs) - k} drawn at random (seed "
             f"{res.config.seed}); high-fidelity seeds {s['seeds']}; {s['hifi_train_s'] / 60:.1f} min of "
             f"high-fidelity training, zero-cost scores in {s['zero_cost_s']:.1f} s."),
        Table(["measure", "value [95% CI]"], measures), Para(_reading(s))]
    preds = s.get("predictors") or {}
    if preds:
        rows = [[f"trained proxy ({res.proxy.budget()})", f"{_f(s['kendall_tau'])}{_ci(s['kendall_tau_ci'])}",
                 _f(s["spearman_rho"]), _f(s["top_k_recall"]), "1.00"]]
        for n, p in preds.items():
            h, q = p["vs_high_fidelity"], p["vs_proxy"]
            rows.append([n, f"{_f(h['kendall_tau'])}{_ci(h['kendall_tau_ci'])}", _f(h["spearman_rho"]),
                         _f(h["top_k_recall"]), _f(q["kendall_tau"])])
        blocks += [Heading("Cheap predictors on the same archs", 3),
                   Table(["predictor", "tau vs high fidelity [95% CI]", "rho vs high fidelity", "top-k recall",
                          "tau vs proxy"], rows),
                   Para("params / MACs: the deployed network's counts; synflow, naswot, grad_norm: training-free "
                        "scores at initialisation (see nas_harness.evaluation.zero_cost for definitions and papers).")]
    blocks += _audit_blocks(s)
    archs = [[f"{r['label']}{' (top)' if r['proxy_top_k'] else ''}", _f(r["proxy_rank"], 0),
              f"{_pct(r['proxy_val_acc'])} [{_pct(r['proxy_ci_low'])}, {_pct(r['proxy_ci_high'])}]",
              _f(r["hifi_rank"], 0), f"{_pct(r['hifi_val_acc'])} [{_pct(r['hifi_ci_low'])}, {_pct(r['hifi_ci_high'])}]",
              str(r["hifi_runs"])]
             for r in sorted(res.archs, key=lambda r: r["proxy_rank"] if math.isfinite(r["proxy_rank"]) else math.inf)]
    blocks += [Heading("Archs", 3),
               Table(["arch", "proxy rank", "proxy val % [95% CI]", "high-fidelity rank",
                      "high-fidelity val % [95% CI]", "runs"], archs),
               Para("Intervals: tau/rho by a percentile bootstrap over archs (scipy.stats.bootstrap, "
                    f"{s['bootstrap_resamples']} resamples); accuracies: Wilson 95% on the validation split (one run) "
                    "or a Student-t 95% interval over runs, clipped to [0, 100] %. Both scores are validation "
                    "accuracies (val_acc: the best epoch's, the harness's convention; the last epoch's is the check "
                    "row above); the test split is not used.")]
    if res.failed:
        blocks += [Para("Failed runs:"), Bullets([f"{r.group} seed {r.seed}: {r.error}" for r in res.failed])]
    return to_markdown(blocks)


def _json_default(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.bool_):
        return bool(v)
    return str(v)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_clean(x) for x in v]
    return v


def write_fidelity(res: FidelityResult, figure: bool = True) -> list[Path]:
    """``fidelity.json`` (the summary, per-arch rows included), ``fidelity.md``, ``fidelity_archs.csv`` and
    ``fidelity.png/svg``."""
    import pandas as pd

    out = res.out_dir
    out.mkdir(parents=True, exist_ok=True)
    name = res.config.name
    stem = name if name.startswith("fidelity") else f"fidelity-{name}"
    paths = [out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}_archs.csv"]
    write_text(paths[0], json.dumps(_clean(res.summary), indent=2, default=_json_default) + "\n")
    write_text(paths[1], markdown(res))
    frame = pd.DataFrame(res.archs)
    with write_output(paths[2]) as f:
        frame.to_csv(f, index=False)
    if figure and not frame.empty and frame["hifi_runs"].max() > 0:
        from nas_harness.plots._style import save
        from nas_harness.plots.evaluation import plot_fidelity

        paths += save(plot_fidelity(frame, res.summary, title=res.study_name), out, stem)
    return paths
