"""The study report: settings, the answer ("did the search beat B0?"), the Pareto table, figures, and how to
reproduce and retrain a chosen arch.  Written as Markdown and HTML next to the study (plus the trial table as
CSV/Parquet, so the numbers behind every figure ship with it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas_harness._config import write_text
from nas_harness.report.document import Block, Bullets, Code, Heading, Image, Para, Table, to_html, to_markdown
from nas_harness.report.settings import settings_blocks
from nas_harness.results import (
    COST_NAMES,
    ReferencePoint,
    accuracy_note,
    cost_text,
    default_reference_point,
    dominated_by,
    eligible,
    export_frame,
    hypervolume,
    load_study,
    pareto_front,
    resolve_source,
    study_cost,
    trials_frame,
)
from nas_harness.results.export import counted_classes, study_data_settings
from nas_harness.results.stats import BEATS, TIED, AccuracyDifference, accuracy_difference

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportPaths:
    markdown: Path
    html: Path
    tables: list[Path]
    figures: list[Path]


def _pct(v: Any) -> str:
    return "" if v is None or v != v else f"{100 * float(v):.2f}"


def _mmacs(v: Any) -> str:
    return "" if v is None or v != v else f"{float(v) / 1e6:.2f}"


def _mparams(v: Any) -> str:
    return "" if v is None or v != v else f"{float(v) / 1e6:.3f}"


def _ci(lo: Any, hi: Any) -> str:
    return "" if lo is None or hi is None or lo != lo or hi != hi else f"[{100 * lo:.1f}, {100 * hi:.1f}]"


def _pp(d: AccuracyDifference) -> str:
    """'+1.10 pp [-2.78, +4.97]' (the interval only where it is known)."""
    ci = f" [{100 * d.low:+.2f}, {100 * d.high:+.2f}]" if d.low == d.low and d.high == d.high else ""
    return f"{100 * d.estimate:+.2f} pp{ci}"


def _ms(v: Any) -> str:
    return "" if v is None or v != v else f"{float(v):.3g}"




_SPLIT = {"val_acc": "val", "val_acc_final": "val", "test_acc": "test"}


def _difference(a: Any, b: Any, metric: str) -> AccuracyDifference:
    """A − B of two frame rows on ``metric`` with Newcombe's interval (none for the reward)."""
    split = _SPLIT.get(metric)
    na, nb = (a[f"{split}_n"], b[f"{split}_n"]) if split else (None, None)
    return accuracy_difference(a[metric], na, b[metric], nb)


def pareto_table(df: pd.DataFrame, metric: str = "val_acc", cost: str = "macs") -> Table:
    """The search's Pareto front, most accurate first (the rows ``nas-harness export --by pareto`` ranks),
    each accuracy with its Wilson 95 % interval from the split size."""
    front = pareto_front(df, cost, metric).sort_values("front_rank")
    rows = [[str(int(r["front_rank"])), str(r["name"]), _pct(r["val_acc"]), _ci(r["val_ci_low"], r["val_ci_high"]),
             _pct(r["test_acc"]), _ci(r["test_ci_low"], r["test_ci_high"]), _mmacs(r["macs"]),
             _mparams(r["params"]), _ms(r.get("latency_ms")), f"{r['epochs']:g}" if r["epochs"] == r["epochs"] else "",
             str(r["arch"])] for _, r in front.iterrows()]
    return _drop_empty(Table(["rank", "trial", "val acc %", "val 95% CI", "test acc %", "test 95% CI", "MMACs",
                              "params (M)", "latency ms", "epochs", "arch"], rows, code_columns={10}))


def _beaten_by(front: pd.DataFrame, ref: Any, metric: str, cost: str = "macs") -> tuple[list[str], list[str]]:
    """Front archs that cost no more than ``ref`` on ``cost``: (those whose accuracy is higher beyond noise,
    those at least as accurate on the point estimate but tied within noise)."""
    beat, tied = [], []
    for _, r in front[front[cost] <= ref[cost]].iterrows():
        d = _difference(r, ref, metric)
        if d.verdict == BEATS:
            beat.append(str(r["name"]))
        elif d.estimate >= 0 and d.verdict == TIED:
            tied.append(str(r["name"]))
    return beat, tied


def reference_table(df: pd.DataFrame, metric: str = "val_acc", cost: str = "macs") -> Table:
    """Reference archs, which search front points dominate them on the point estimates (cheaper and at least
    as accurate), and which beat them beyond noise (no more MACs and a difference whose 95 % interval is
    above zero; :func:`nas_harness.results.stats.accuracy_difference`)."""
    front = pareto_front(df, cost, metric)
    refs = eligible(df, cost, metric, include_reference=True)
    refs = refs[refs["is_reference"]]
    rows = []
    for _, r in refs.iterrows():
        dom = dominated_by(front, float(r[cost]), float(r[metric]), cost, metric)
        beat, _ = _beaten_by(front, r, metric, cost)
        rows.append([str(r["name"]), _pct(r["val_acc"]), _ci(r["val_ci_low"], r["val_ci_high"]), _pct(r["test_acc"]),
                     _ci(r["test_ci_low"], r["test_ci_high"]), _mmacs(r["macs"]), _mparams(r["params"]),
                     _ms(r.get("latency_ms")), ", ".join(dom["name"]) or "none", ", ".join(beat) or "none",
                     str(r["arch"])])
    return _drop_empty(Table(["reference", "val acc %", "val 95% CI", "test acc %", "test 95% CI", "MMACs",
                              "params (M)", "latency ms", "dominated by", "beaten by (95%)", "arch"], rows,
                             code_columns={10}))


def _drop_empty(t: Table) -> Table:
    """Drop columns nobody filled (e.g. test accuracy when the study did not evaluate the test split)."""
    keep = [i for i in range(len(t.header)) if not t.rows or any(r[i] for r in t.rows)]
    code = {keep.index(i) for i in t.code_columns if i in keep}
    return Table([t.header[i] for i in keep], [[r[i] for i in keep] for r in t.rows], code)


def _verdict(df: pd.DataFrame, metric: str, folder: str = "RESULTS_DIR", cost: str = "macs") -> list[str]:
    """The answer, worded by the intervals (:func:`nas_harness.results.stats.verdict`): a search arch
    "beats" a reference only when it costs no more (on ``cost``) and the 95 % interval of the accuracy difference
    lies above zero; a cheaper arch whose difference interval includes zero is "tied within noise"."""
    front = pareto_front(df, cost, metric)
    refs = eligible(df, cost, metric, include_reference=True)
    refs = refs[refs["is_reference"]]
    split = _SPLIT.get(metric)
    lines = []
    undecided = False
    if not front.empty:
        ranked = front.sort_values("front_rank")
        best = ranked.iloc[0]
        ci = _ci(best[f"{split}_ci_low"], best[f"{split}_ci_high"]) if split else ""
        line = (f"Most accurate search arch: {best['name']} with {_pct(best[metric])}% {metric}"
                f"{' ' + ci if ci else ''} at {cost_text(best[cost], cost)}.")
        tied = [str(r["name"]) for _, r in ranked.iloc[1:].iterrows()
                if _difference(best, r, metric).verdict == TIED]
        if tied:
            line += (f" Tied within noise with {', '.join(tied)} (95% interval of the difference includes 0): "
                     "the data cannot rank these.")
            undecided = True
        lines.append(line)
    for _, r in refs.iterrows():
        beat, tied = _beaten_by(front, r, metric, cost)
        ci = _ci(r[f"{split}_ci_low"], r[f"{split}_ci_high"]) if split else ""
        head = f"Reference {r['name']} ({_pct(r[metric])}%{' ' + ci if ci else ''} at {cost_text(r[cost], cost)})"
        names = {str(x["name"]): x for _, x in front.iterrows()}
        if beat:
            detail = "; ".join(f"{n} {_pp(_difference(names[n], r, metric))} at {cost_text(names[n][cost], cost)}"
                               for n in beat)
            lines.append(f"{head}: beaten: {detail} (no more {COST_NAMES[cost]}, more accurate beyond noise).")
        elif tied:
            detail = "; ".join(f"{n} {_pp(_difference(names[n], r, metric))} at {cost_text(names[n][cost], cost)}"
                               for n in tied)
            lines.append(f"{head}: not beaten beyond noise; tied within noise: {detail} (as accurate within noise "
                         f"at no more {COST_NAMES[cost]}).")
            undecided = True
        else:
            lines.append(f"{head}: not dominated by any search arch.")
    if refs.empty:
        named = df[df["is_reference"]]
        if named.empty:
            lines.append("No reference archs (user attr `reference`) in this study: nothing to compare against.")
        else:
            states = ", ".join(f"{r['name']} ({r['outcome']})" for _, r in named.iterrows())
            lines.append(f"The reference archs have no {metric} to compare against: {states}.")
    if metric not in df or not df[metric].notna().any():
        counts = ", ".join(f"{n} {o}" for o, n in sorted(df["outcome"].value_counts().items()))
        lines.append(f"No trial has a {metric} yet ({counts or 'no trials'}): nothing was trained to compare.")
        return lines
    if split is None:
        lines.append(f"{metric} has no sampling interval: every comparison above is worded as tied unless decided "
                     "on accuracy.")
    elif not df[f"{split}_n"].notna().any():
        lines.append(f"This study did not record its {split} split size, so no interval can be computed: "
                     "nothing is called beaten beyond noise.")
    else:
        sizes = sorted({int(v) for v in df[f"{split}_n"].dropna()})
        lines.append(f"Intervals: Wilson 95% on the {split} split ({', '.join(map(str, sizes))} images), one "
                     "training run each; a difference of two accuracies has Newcombe's 95% hybrid score interval "
                     "(built from the two Wilson intervals); they leave out seed-to-seed training noise, so a "
                     "decided comparison can still change over seeds."
                     + (" val_acc is each trial's best epoch (picked on the same split), which makes it slightly "
                        "optimistic; val_acc_final is the last epoch's." if metric == "val_acc"
                        and (df["epochs"].dropna() > 1).any() else ""))
    if undecided or not refs.empty:
        lines.append(f"To decide over seeds: `nas-harness confirm {folder} --top 3 --seeds 3` (paired differences "
                     "vs each reference, same recipe, validation split only).")
    return lines


def arch_chunks(arch: str, width: int = 64) -> list[str]:
    """An arch string cut after commas into pieces of at most ``width`` characters (a block longer than that
    stays whole): for code a reader can see without scrolling, never cut inside a block."""
    out: list[str] = []
    for block in arch.split(","):
        piece = block if not out else out[-1] + block
        if out and len(piece) <= width:
            out[-1] = piece
        else:
            out.append(block)
        out[-1] += ","
    out[-1] = out[-1][:-1]
    return out


def info_command(arch: str) -> str:
    """``nas-harness info '<arch>'`` in lines short enough to read without scrolling (bash ``+=``)."""
    parts = arch_chunks(arch)
    if len(parts) == 1:
        return f"nas-harness info '{arch}'"
    lines = [f"arch='{parts[0]}'"] + [f"arch+='{p}'" for p in parts[1:]]
    return "\n".join([*lines, 'nas-harness info "$arch"'])


def _pretty(d: dict[str, Any]) -> str:
    """A dict literal in lines of at most ~88 characters, continuation lines indented for the call it sits in."""
    import pprint

    return pprint.pformat(d, width=80, sort_dicts=False).replace("\n", "\n" + " " * 8)


def _retrain_code(df: pd.DataFrame, arch: str) -> str:
    cfg = df.attrs.get("config") or {}
    trial = cfg.get("trial") or {}
    train = dict(cfg.get("train") or {})
    epochs = train.get("epochs")
    train["epochs"] = 4 * epochs if isinstance(epochs, (int, float)) else 50
    settings = study_data_settings(df)
    return (
        "from nas_harness.arch import parse_arch\n"
        "from nas_harness.data import ProxyConfig\n"
        "from nas_harness.train import TrainConfig\n"
        "from nas_harness.trial import TrialSpec, run_trial\n\n"
        "spec = TrialSpec(\n    arch=parse_arch(\n" + "".join(f"        {p!r}\n" for p in arch_chunks(arch, 60))
        + "    ),\n"
        f"    data=ProxyConfig.from_dict({_pretty(cfg.get('data') or {})}),\n"
        f"    train=TrainConfig.from_dict({_pretty(train)}),  # 4x the search budget\n"
        f"    seed={cfg.get('seed', 0)!r}, stem_stride={settings['stem_stride']!r},\n"
        f"    macs_resolution={trial.get('macs_resolution', 224)!r}, "
        f"macs_num_classes={trial.get('macs_num_classes', 1000)!r},\n"
        "    evaluate_test=True,  # held-out test split, touched only now\n)\n"
        "metrics = run_trial(spec)\n"
        "print(metrics['val_acc'], metrics['test_acc'], metrics['macs'])\n"
    )


def build_report(df: pd.DataFrame, storage: str, figures: list[Path], base: Path,
                 reference: ReferencePoint | None = None, metric: str = "val_acc",
                 study_arg: str | None = None) -> list[Block]:
    """The report as blocks (see :mod:`nas_harness.report.document`); ``figures`` are linked relative to
    ``base`` (the report's folder), PNGs only; ``study_arg`` is how commands in the report name the study
    (default: ``base``)."""
    name = str(df.attrs.get("study_name"))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    blocks: list[Block] = [Heading(f"Study report: {name}", 1), Para(f"Generated {stamp} by `nas-harness report`.")]
    blocks += settings_blocks(df, storage)
    cost = study_cost(df)
    blocks += [Heading("Result at a glance"), Bullets(_verdict(df, metric, study_arg or str(base), cost))]
    if eligible(df, cost, metric, include_reference=True).shape[0]:
        ref = reference or default_reference_point(df, cost)
        hv = hypervolume(df, ref, cost=cost)
        refs = df[df["is_reference"]]
        hv_ref = hypervolume(refs, ref, cost=cost, include_reference=True) if not refs.empty else None
        blocks.append(Para(
            f"Hypervolume (accuracy up, {COST_NAMES[cost]} down; fraction of the box up to the reference point "
            f"{cost_text(ref.cost, cost)}, accuracy {ref.acc:.0%}): search front {hv:.4f}"
            + (f", reference archs alone {hv_ref:.4f}." if hv_ref is not None else ".")))
    blocks += [Heading("Pareto front (search trials, complete, full budget)"),
               Para(f"Maximise {metric}, minimise {COST_NAMES[cost]}. `#N` is Optuna trial N; rank 1 is the most "
                    "accurate. 95% CI: Wilson interval of the accuracy on its split (sampling noise of the split only; "
                    "one training run per arch). MACs and params are those of the deployed network "
                    f"({counted_classes(df):,} classes, 3 input channels), not of the smaller proxy network trained "
                    "on the data set's classes and channels (see Settings)."
                    + (f" Accuracies are {accuracy_note(df)}." if accuracy_note(df) else "")),
               pareto_table(df, metric, cost)]
    ref_table = reference_table(df, metric, cost)
    if ref_table.rows:
        blocks += [Heading("Reference architectures (same proxy recipe)"), ref_table]
    pngs = [p for p in figures if p.suffix == ".png"]
    if pngs:
        blocks.append(Heading("Figures"))
        blocks += [Image(str(p.relative_to(base)) if p.is_relative_to(base) else str(p), p.stem.replace("_", " "))
                   for p in pngs]
    front = pareto_front(df, cost, metric).sort_values("front_rank")
    blocks.append(Heading("Reproduce"))
    if front.empty:
        blocks.append(Para("No completed full-budget search trial yet."))
        return blocks
    arch = str(front.iloc[0]["arch"])
    folder = study_arg or str(base)
    blocks += [
        Para("Inspect the most accurate front arch (layers, MACs, params):"),
        Code(info_command(arch), "bash"),
        Para("Export it (arch string, JSON spec, `build_model` call; optionally its compound-scaled family):"),
        Code(f"nas-harness export {folder} --by pareto --rank 1 --family 1 2 3", "sh"),
        Para("Train it longer with the study's proxy recipe and evaluate once on the test split:"),
        Code(_retrain_code(df, arch), "python"),
        Para("Redraw the figures or rebuild this report:"),
        Code(f"nas-harness plot {folder}\nnas-harness report {folder}", "sh"),
    ]
    return blocks


def write_report(source: str | Path, study_name: str | None = None, *, out_dir: str | Path | None = None,
                 figures: bool = True, reference: ReferencePoint | None = None,
                 metric: str = "val_acc") -> ReportPaths:
    """Write ``report.md``, ``report.html``, ``trials.csv`` and ``trials.parquet`` (and the figures unless
    ``figures=False``) into the study folder (or ``out_dir``)."""
    src = resolve_source(source, study_name)
    df = trials_frame(load_study(src))
    out = Path(out_dir) if out_dir else src.out_dir
    out.mkdir(parents=True, exist_ok=True)
    figs: list[Path] = []
    if figures:
        from nas_harness.plots import write_study_figures

        figs = write_study_figures(source, src.study_name,
                                   out_dir=out / "figures", reference=reference, metric=metric)
    tables = [export_frame(df, out / "trials.csv")]
    try:
        tables.append(export_frame(df, out / "trials.parquet"))
    except ImportError:  # pyarrow is optional
        log.info("pyarrow not installed: skipping trials.parquet")
    if src.folder is not None and (src.folder / "study.db").is_file():
        study_arg = str(src.folder)
    else:
        study_arg = f"{src.label} --study {src.study_name}"
    blocks = build_report(df, src.label, figs, out, reference, metric, study_arg)
    md, page = out / "report.md", out / "report.html"
    write_text(md, to_markdown(blocks))
    write_text(page, to_html(blocks, f"Study report: {src.study_name}"))
    return ReportPaths(md, page, tables, figs)
