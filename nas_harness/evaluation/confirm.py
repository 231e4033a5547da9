"""``nas-harness confirm``: retrain the search's best archs and its references over fresh seeds.

A search ranks archs by one training run each on one validation split.  Confirmation retrains the top-K archs
of the Pareto front (or of another *validation* ranking; the test split never selects anything) and every
reference arch with S further seeds, at the study's own recipe (data, budget, threads; only the seed
changes), and reports:

- per arch: mean validation accuracy over the seeds with its Student-t 95 % interval (and the test accuracy
  where ``--test`` asked for it: reported, never used to rank), next to the search's single-run number;
- per arch and reference: the *paired* difference over the same seeds (same seed = same data order), with
  its 95 % interval and p-value (``scipy.stats.ttest_rel``) and the wording rule of
  :func:`nas_harness.results.stats.verdict`: **beats** when the interval is above 0, **worse** when below,
  **tied within noise** otherwise (a difference that is the same on every seed is worded by
  :func:`~nas_harness.results.stats.paired_words`: "identical on all N seeds", or the verdict "by the same
  margin" with a zero-width interval); likewise against the arch with the best mean;
- the Pareto front (mean accuracy vs the study's cost: MACs, parameters or latency) recomputed on the means.

The seeds are new (the search's own seed is skipped): the archs were chosen *because* of that seed's results,
so re-using it would carry the selection bias into the confirmation.  The validation split is the search's, so
the choice of archs on that split still flatters them a little; ``--test`` measures the held-out test split.

Runs are stored one trial per (arch, seed) in the study's own storage, as study ``<study>-confirm`` (a
:class:`~nas_harness.evaluation.store.JobStore`): re-running the command resumes, a SIGKILL loses at most
the epochs since the last checkpoint, and ``--seeds`` can grow later.  A study whose storage cannot be written
(a read-only copy of a results folder) is read read-only and its runs go to ``out_dir``/runs.db instead
(:func:`~nas_harness.evaluation.recipe.open_study_source`).  With ``--scaling`` the best groups of
the compound-scaling search (``<study>-scaling``; triples that give the same network are one group) are
retrained instead, each at its own resolution, and compared with the best mean.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from nas_harness._config import Bool, ConfigModel, Int, check_outputs, write_output, write_text
from nas_harness.backends.settings import RayConfig
from nas_harness.errors import ConfigError
from nas_harness.evaluation.recipe import (
    Candidate,
    StudyRecipe,
    fresh_seeds,
    merge_candidates,
    open_study_source,
    reference_candidates,
    search_candidates,
    study_recipe,
)
from nas_harness.evaluation.store import StoredRun, open_job_store, retrain_candidates
from nas_harness.objectives import MS_COSTS
from nas_harness.results import COST_NAMES
from nas_harness.results.stats import (
    ACCURACY,
    PairedDelta,
    Summary,
    accuracy_interval,
    interval_text,
    paired_delta,
    paired_words,
    summarize,
)

__all__ = ["ConfirmAnalysis", "ConfirmResult", "ConfirmRow", "ConfirmSettings", "analyze", "run_confirm",
           "write_confirm"]


class ConfirmSettings(ConfigModel):
    """What ``nas-harness confirm`` retrains (its flags, validated like every config table)."""

    top: Annotated[Int, Field(ge=0, le=1000, description="best search archs (or scaling groups) to retrain")] = 3
    seeds: Annotated[Int, Field(ge=1, le=1000, description="fresh seeds per arch (the search's seed is skipped)")
                     ] = 3
    by: Annotated[Literal["pareto", "val_acc", "reward"], Field(description=(
        "validation ranking the top archs are taken from (pareto: the front of val_acc vs the study's cost, most "
        "accurate first)"))
    ] = "pareto"
    references: Annotated[Bool, Field(description="also retrain the study's reference archs")] = True
    evaluate_test: Annotated[Bool, Field(description="also measure the test split (reported, never used to rank)")
                             ] = False
    scaling: Annotated[Bool, Field(description="retrain the best groups of the compound-scaling search instead")
                       ] = False
    backend: Annotated[Literal["local", "ray"], Field(description="local: in this process; ray: one task per run")
                       ] = "local"
    ray: RayConfig = RayConfig()
    workers: Annotated[Int, Field(ge=0, le=1024, description=(
        "local backend: runs at once, each in a worker process (1: in this process); 0 = as many as the cores "
        "allow at the study's threads per run (the CLI's default)"))] = 1


@dataclass
class ConfirmRow:
    """One retrained arch: its search result and what the seeds say."""

    cand: Candidate
    val: Summary
    test: Summary
    seeds: tuple[int, ...]
    failed: int
    vs: dict[str, PairedDelta] = field(default_factory=dict)  # reference (or best) label -> paired Δ
    vs_best: PairedDelta | None = None
    on_front: bool = False
    rank: int = 0


@dataclass
class ConfirmAnalysis:
    rows: list[ConfirmRow]
    references: list[str]
    best: str | None
    seeds: list[int]
    cost: str = "macs"  # the study's cost column: the front of the means is on it


def _seed_map(runs: list[StoredRun], key: str, seeds: set[int]) -> dict[int, float]:
    return {r.seed: float(r.metrics[key]) for r in runs
            if r.state == "ok" and r.seed in seeds and r.metrics.get(key) is not None}


def analyze(cands: list[Candidate], runs: list[StoredRun], seeds: list[int], cost: str = "macs") -> ConfirmAnalysis:
    """Means, intervals, paired differences (vs every reference and vs the best mean) and the front of the
    means on ``cost`` (the study's cost column), from the stored runs of the planned seeds."""
    from nas_harness.results import pareto_mask

    wanted = set(seeds)
    by_job: dict[str, list[StoredRun]] = {}
    for r in runs:
        by_job.setdefault(r.group, []).append(r)
    rows = []
    for c in cands:
        mine = by_job.get(c.job, [])
        val = _seed_map(mine, "val_acc", wanted)
        tests = _seed_map(mine, "test_acc", wanted)
        rows.append(ConfirmRow(c, summarize(list(val.values()), bounds=ACCURACY),
                               summarize(list(tests.values()), bounds=ACCURACY),
                               tuple(sorted(val)), sum(1 for r in mine if r.state != "ok" and r.seed in wanted)))
    vals = {row.cand.job: _seed_map(by_job.get(row.cand.job, []), "val_acc", wanted) for row in rows}
    refs = [row for row in rows if row.cand.kind == "reference"]
    scored = [row for row in rows if row.val.n > 0]
    scored.sort(key=lambda r: (-r.val.mean, r.cand.cost(cost) if r.cand.cost(cost) == r.cand.cost(cost) else math.inf))
    for i, row in enumerate(scored, start=1):
        row.rank = i
    best = scored[0] if scored else None
    for row in rows:
        for ref in refs:
            if ref is row:
                break  # a reference is compared with the references listed before it (each pair once)
            row.vs[ref.cand.label] = paired_delta(vals[row.cand.job], vals[ref.cand.job])
        if best is not None and best is not row:
            row.vs_best = paired_delta(vals[row.cand.job], vals[best.cand.job])
    finite = [r for r in scored if r.cand.cost(cost) == r.cand.cost(cost)]
    if finite:
        mask = pareto_mask(np.array([r.cand.cost(cost) for r in finite]), np.array([r.val.mean for r in finite]))
        for r, on in zip(finite, mask):
            r.on_front = bool(on)
    return ConfirmAnalysis(rows, [r.cand.label for r in refs], best.cand.label if best else None, list(seeds),
                           cost)


@dataclass
class ConfirmResult:
    study_name: str
    store_name: str
    recipe: StudyRecipe
    analysis: ConfirmAnalysis
    ran: list[tuple[str, int]]
    skipped: list[tuple[str, int]]
    failed: list[StoredRun]
    wall_s: float
    out_dir: Path
    outputs: list[Path] = field(default_factory=list)
    train_s: float = 0.0


def _scaling_candidates(study: Any, top: int) -> list[Candidate]:
    from nas_harness.results.scaling import scaling_groups, scaling_rows

    out = []
    for g in scaling_groups(scaling_rows(study))[:top]:
        out.append(Candidate(job=g.job, label=g.label, kind="scaling", arch=g.arch,
                             macs=float(g.macs) if g.macs is not None else math.nan, params=math.nan,
                             search_val=g.val_acc, search_val_n=float(g.val_n) if g.val_n else math.nan,
                             number=g.numbers[0], resolution=g.resolution, macs_resolution=g.macs_resolution,
                             extra={"same_network": [f"a{a:g}/b{b:g}/g{c:g}" for a, b, c in g.members[1:]]}))
    return out


def run_confirm(source: str | Path, settings: ConfirmSettings | None = None, *, study_name: str | None = None,
                out_dir: str | Path | None = None, retry_failed: bool = False, progress: bool = True,
                figure: bool = True, report_only: bool = False, log: Any = None,
                on_record: Any = None) -> ConfirmResult:
    """Retrain the selected archs over fresh seeds (resuming), then write ``confirm.csv``, ``confirm.md`` and
    the figure into ``out_dir`` (default: the study's results folder)."""
    from nas_harness.data import load_proxy
    from nas_harness.results import study_cost, trials_frame

    st = settings or ConfirmSettings()
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    src, study, runs_at = open_study_source(source, study_name, st.scaling, out_dir, "confirm")
    recipe = study_recipe(study)
    cost = "macs"  # the scaling search's groups are compared on MACs
    if st.scaling:
        cands = _scaling_candidates(study, st.top)
    else:
        df = trials_frame(study)
        cost = study_cost(df)
        top = search_candidates(df, st.top, st.by)
        if len(top) < st.top:
            say(f"note: only {len(top)} search arch(s) qualify for --top {st.top} by {st.by}"
                + (" (the Pareto front is that short; --by val_acc takes the most accurate archs instead)"
                   if st.by == "pareto" else ""))
        cands = merge_candidates(top + (reference_candidates(df) if st.references else []))
    if not cands:
        raise ConfigError(f"study {src.study_name!r} has no complete full-budget trial to confirm "
                          f"(--top {st.top}{'' if st.references else ', --no-references'})")
    out = Path(out_dir) if out_dir is not None else (src.folder or src.out_dir.with_name(
        src.study_name.removesuffix("-scaling")))
    seeds = fresh_seeds(st.seeds, recipe.seed)
    stem = "confirm_scaling" if src.study_name.endswith("-scaling") else "confirm"
    check_outputs([out / f"{stem}{end}" for end in (".csv", "_pairs.csv", ".md", ".png", ".svg")],
                  "--out" if out_dir is not None else "output")
    load_proxy(recipe.data)  # a missing data set is one line (exit 2) before anything is written
    from nas_harness.backends.resources import check_resources

    check_resources(SimpleNamespace(run=SimpleNamespace(backend=st.backend), ray=st.ray, train=recipe.train))
    store = open_job_store(src, runs_at, f"{src.study_name}-confirm", "confirm", say, report_only)
    def detail(c: Candidate, m: Any) -> str:
        test = f" test {m['test_acc']:.4f}" if m.get("test_acc") is not None else ""
        return f"val {m.get('val_acc', math.nan):.4f}{test} (search: {c.search_val:.4f}; " \
               f"{m.get('train_time_s', 0.0):.0f} s train)"

    jobs = retrain_candidates(
        store, cands, seeds, recipe,
        lambda c, s: recipe.spec(c.arch, s, evaluate_test=st.evaluate_test, resolution=c.resolution,
                                 macs_resolution=c.macs_resolution),
        bind={"recipe": {**recipe.to_dict(), "scaling": st.scaling}, "kind": "confirm",
              "attrs": {"source_study": src.study_name}, "what": "confirmation runs"},
        announce=lambda n, n_done: (f"confirm {src.study_name}: {len(cands)} arch(s) x {len(seeds)} seed(s) {seeds} "
                                    f"= {n} runs; {n_done} stored, {n - n_done} to run ({st.backend}; "
                                    f"{recipe.describe()}); storage {runs_at.label} study {store.name!r}"),
        detail=detail, report_only=report_only, backend=st.backend, ray=st.ray, retry_failed=retry_failed,
        workers=st.workers,
        progress=progress, checkpoint_dir=out / "checkpoints", on_record=on_record, log=say)
    runs, ran, skipped = jobs.runs, jobs.ran, jobs.skipped
    analysis = analyze(cands, runs, seeds, cost)
    train_s = sum(float(r.metrics.get("wall_time_s") or 0.0) for r in runs if r.state == "ok")
    result = ConfirmResult(src.study_name, store.name, recipe, analysis, ran, skipped,
                           jobs.failed, time.perf_counter() - t0, out, train_s=train_s)
    result.outputs = write_confirm(result, figure=figure)
    return result


# --------------------------------------------------------------------------- output


def _pct(v: float, digits: int = 2) -> str:
    return "" if v is None or v != v else f"{100 * v:.{digits}f}"


def _ci(lo: float, hi: float) -> str:
    return "" if lo != lo or hi != hi else f"[{100 * lo:.2f}, {100 * hi:.2f}]"


def _delta(d: PairedDelta | None) -> str:
    """Δ in pp with its paired interval; none for one pair, nor for a zero-width one (the words say why)."""
    if d is None or d.n == 0:
        return ""
    ci = f" [{100 * d.ci_low:+.2f}, {100 * d.ci_high:+.2f}]" if d.ci_low == d.ci_low and not d.constant else ""
    return f"{100 * d.mean:+.2f}{ci}"


def _seed_ci(s: Summary) -> str:
    """The t interval of a mean over seeds in %, ``n/a (1 seed)`` with one seed, empty with none."""
    return interval_text(s.ci_low, s.ci_high, s.n, 100.0, ".2f") if s.n else ""


def _p(d: PairedDelta | None) -> str:
    if d is None or d.p_value != d.p_value:
        return ""
    return "<0.001" if d.p_value < 0.001 else f"{d.p_value:.3f}"


def arch_table(a: ConfirmAnalysis) -> list[dict[str, Any]]:
    """One dict per arch (``confirm.csv``), ranked by mean validation accuracy."""
    out = []
    for row in sorted(a.rows, key=lambda r: (r.rank == 0, r.rank)):
        c = row.cand
        slo, shi = accuracy_interval(c.search_val, c.search_val_n)
        d: dict[str, Any] = {
            "rank": row.rank or None, "label": c.name, "kind": c.kind, "search_trial": c.number,
            "macs": c.macs, "params": c.params, "latency_ms": c.latency_ms, "search_val_acc": c.search_val,
            "search_val_n": c.search_val_n,
            "search_val_ci_low": slo, "search_val_ci_high": shi, "n_seeds": row.val.n, "seeds": " ".join(
                map(str, row.seeds)), "failed": row.failed, "val_mean": row.val.mean, "val_std": row.val.std,
            "val_ci_low": row.val.ci_low, "val_ci_high": row.val.ci_high, "test_mean": row.test.mean,
            "test_ci_low": row.test.ci_low, "test_ci_high": row.test.ci_high, "front_of_means": row.on_front,
        }
        b = row.vs_best
        d.update({"vs_best_mean": b.mean if b else math.nan, "vs_best_ci_low": b.ci_low if b else math.nan,
                  "vs_best_ci_high": b.ci_high if b else math.nan,
                  "vs_best": (b.verdict if b and b.n else "") if row.rank != 1 else "best"})
        d.update({"resolution": c.resolution, "arch": c.arch})
        out.append(d)
    return out


def pair_table(a: ConfirmAnalysis) -> list[dict[str, Any]]:
    """One dict per (arch, reference) paired comparison (``confirm_pairs.csv``)."""
    out = []
    for row in a.rows:
        for ref, d in row.vs.items():
            out.append({"label": row.cand.name, "reference": ref, "pairs": d.n, "seeds": " ".join(map(str, d.seeds)),
                        "delta_mean": d.mean, "delta_ci_low": d.ci_low, "delta_ci_high": d.ci_high, "t": d.t,
                        "p_value": d.p_value, "verdict": d.verdict if d.n else ""})
    return out


def _conclusions(res: ConfirmResult) -> list[str]:
    a = res.analysis
    lines = []
    by_label = {r.cand.label: r for r in a.rows}
    best = by_label.get(a.best) if a.best else None
    if best is not None:
        noisy = [r for r in a.rows if r is not best and r.vs_best is not None and r.vs_best.n >= 2]
        tied = [r.cand.name for r in noisy if not r.vs_best.constant and r.vs_best.verdict == "tied within noise"]
        behind = [r.cand.name for r in noisy if not r.vs_best.constant and r.vs_best.verdict == "worse"]
        same = [f"{r.cand.name} ({_delta(r.vs_best)} pp: {paired_words(r.vs_best)})" for r in noisy
                if r.vs_best.constant]
        ci = _ci(best.val.ci_low, best.val.ci_high)
        line = (f"Best mean: {best.cand.name} with {_pct(best.val.mean)}% validation accuracy{' ' + ci if ci else ''} "
                f"over {best.val.n} seed(s).")
        if tied:
            line += f" Tied within noise with it (paired 95% interval includes 0): {', '.join(tied)}."
        if behind:
            line += f" Behind it beyond noise: {', '.join(behind)}."
        if same:
            line += f" The same difference to it on every seed: {', '.join(same)}."
        lines.append(line)
    for row in a.rows:
        if row.cand.kind == "reference":
            continue
        for ref, d in row.vs.items():
            if d.n == 0:
                continue
            words = paired_words(d)
            lines.append(f"{row.cand.name} vs {ref}: {_delta(d)} pp over {d.n} paired seed(s)"
                         f"{f' (p = {_p(d)})' if _p(d) else ''}: {words}.")
    picked = [r for r in a.rows
              if r.cand.kind != "reference" and r.val.n > 0 and r.cand.search_val == r.cand.search_val]
    refs = [r for r in a.rows if r.cand.kind == "reference" and r.val.n > 0]
    if picked:
        drop = float(np.mean([r.cand.search_val - r.val.mean for r in picked]))
        line = (f"Selection effect: the {len(picked)} selected arch(s) scored {100 * drop:+.2f} pp more in the search "
                "(the one run they were picked on) than their mean over fresh seeds")
        if refs:
            ref_drop = float(np.mean([r.cand.search_val - r.val.mean for r in refs]))
            line += f"; the references, which were not selected, {100 * ref_drop:+.2f} pp"
        lines.append(line + ".")
    front = [r.cand.name for r in sorted(a.rows, key=lambda r: r.cand.cost(a.cost)) if r.on_front]
    if front:
        lines.append(f"Pareto front of the means (accuracy up, {COST_NAMES[a.cost]} down): {', '.join(front)}.")
    return lines


_COST_HEAD = {"macs": "MMACs", "params": "params (M)", "latency_ms": "latency ms"}


def _cost_cell(v: float, cost: str) -> str:
    if v != v:
        return ""
    return f"{v:.3g}" if cost in MS_COSTS else f"{v / 1e6:.3f}" if cost == "params" else f"{v / 1e6:.2f}"


def markdown(res: ConfirmResult) -> str:
    """``confirm.md``: settings, the conclusions in words, the per-arch table and the paired differences."""
    from nas_harness.report.document import Block, Bullets, Heading, Para, Table, to_markdown

    a = res.analysis
    rec = res.recipe
    cost_head = _COST_HEAD.get(a.cost, a.cost + (" ms" if a.cost in MS_COSTS else " (M)"))
    head = ["rank", "arch", "kind", cost_head, "search val % [95% CI]", "seeds", "val % mean ± std", "95% CI",
            "vs best (paired) pp [95% CI]", "front of means"]
    has_test = any(r.test.n for r in a.rows)
    if has_test:
        head.insert(8, "test % mean [95% CI]")
    rows = []
    for row in sorted(a.rows, key=lambda r: (r.rank == 0, r.rank)):
        c = row.cand
        slo, shi = accuracy_interval(c.search_val, c.search_val_n)
        best = "best" if row.rank == 1 else (f"{_delta(row.vs_best)} ({paired_words(row.vs_best)})" if row.vs_best
                                              and row.vs_best.n >= 2 else _delta(row.vs_best))
        cells = [str(row.rank or "–"), c.name, c.kind, _cost_cell(c.cost(a.cost), a.cost),
                 f"{_pct(c.search_val)} {_ci(slo, shi)}".strip(), f"{row.val.n}" + (f" (+{row.failed} failed)"
                                                                                    if row.failed else ""),
                 f"{_pct(row.val.mean)} ± {_pct(row.val.std)}" if row.val.n > 1 else _pct(row.val.mean),
                 _seed_ci(row.val), best, "yes" if row.on_front else ""]
        if has_test:
            cells.insert(8, f"{_pct(row.test.mean)} {_seed_ci(row.test)}".strip() if row.test.n else "")
        rows.append(cells)
    pairs = [[row.cand.name, ref, _delta(d), str(d.n), _p(d) or "–", paired_words(d)]
             for row in a.rows for ref, d in row.vs.items() if d.n]
    stored = sorted({s for row in a.rows for s in row.seeds})
    seeds = (f"seeds {a.seeds}" if stored == sorted(a.seeds) else
             f"seeds {stored} stored of the {a.seeds} asked for (re-run without --report-only to train the rest)")
    settings = (f"Study `{res.study_name}`: {len(a.rows)} arch(s) retrained with {seeds} (the search used "
                f"seed {rec.seed}) at the search's recipe: {rec.describe()}.  Runs are stored in study "
                f"`{res.store_name}`; {len(res.ran)} ran now, {len(res.skipped)} were stored already; "
                f"{res.train_s / 60:.1f} min of training in total.")
    rule = ("Intervals: mean over seeds with a Student-t 95% interval, clipped to [0, 100] % (none with one seed); "
            "Δ = paired difference over the same seeds with its paired t 95% interval (scipy.stats.ttest_rel). "
            "Wording: beats when the 95% interval of Δ is above 0, worse when below, tied within noise otherwise; "
            "one pair decides nothing; a Δ that is the same on every seed has a zero-width interval that measures "
            "no noise and is worded as such (\"identical\" when it is 0). The search column is the single run the "
            "arch was selected on, with its Wilson 95% interval. Selection uses validation accuracy only.")
    blocks: list[Block] = [Heading(f"Confirmation of `{res.study_name}` over seeds"), Para(settings),
                           Bullets(_conclusions(res)), Table(head, rows)]
    if pairs:
        blocks += [Heading("Paired differences vs the references", 3),
                   Table(["arch", "vs reference", "Δ val pp [95% CI]", "pairs", "p", "verdict"], pairs)]
    blocks.append(Para(rule))
    if res.failed:
        blocks += [Para("Failed runs:"), Bullets([f"{r.group} seed {r.seed}: {r.error}" for r in res.failed])]
    return to_markdown(blocks)


def write_confirm(res: ConfirmResult, figure: bool = True) -> list[Path]:
    """``confirm.csv`` (per arch), ``confirm_pairs.csv``, ``confirm.md`` and ``confirm.png/svg``
    (``confirm_scaling.*`` for the scaling study's groups)."""
    import pandas as pd

    out = res.out_dir
    out.mkdir(parents=True, exist_ok=True)
    arch = pd.DataFrame(arch_table(res.analysis))
    pairs = pd.DataFrame(pair_table(res.analysis), columns=["label", "reference", "pairs", "seeds", "delta_mean",
                                                            "delta_ci_low", "delta_ci_high", "t", "p_value",
                                                            "verdict"])
    stem = "confirm_scaling" if res.study_name.endswith("-scaling") else "confirm"
    paths = [out / f"{stem}.csv", out / f"{stem}_pairs.csv", out / f"{stem}.md"]
    for frame, path in ((arch, paths[0]), (pairs, paths[1])):
        with write_output(path) as f:
            frame.to_csv(f, index=False)
    write_text(paths[2], markdown(res))
    if figure and not arch.empty and arch["n_seeds"].max() > 0:
        from nas_harness.plots._style import save
        from nas_harness.plots.evaluation import plot_confirm

        fig = plot_confirm(arch, pairs, title=f"{res.study_name}: {len(res.analysis.seeds)} fresh seeds",
                           cost=res.analysis.cost)
        paths += save(fig, out, stem)
    return paths
