"""The study report: settings, the answer ("did the search beat B0?"), the Pareto table, figures, and how to
reproduce and retrain a chosen arch.  Written as Markdown and HTML next to the study (plus the trial table as
CSV/Parquet, so the numbers behind every figure ship with it)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas_harness.report.document import Block, Bullets, Code, Heading, Image, Para, Table, to_html, to_markdown
from nas_harness.results import (
    ReferencePoint,
    default_reference_point,
    dominated_by,
    eligible,
    export_frame,
    hypervolume,
    load_study,
    pareto_front,
    resolve_source,
    trials_frame,
)
from nas_harness.results.export import study_data_settings

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


def _ms(v: Any) -> str:
    return "" if v is None or v != v else f"{float(v):.3g}"


def study_cost(df: pd.DataFrame) -> str:
    """The cost the study optimised ([objective] cost): ``latency_ms`` when it is latency and recorded, else MACs."""
    objective = (df.attrs.get("config") or {}).get("objective") or {}
    wanted = {"latency": "latency_ms", "params": "params"}.get(objective.get("cost"), "macs")
    return wanted if wanted in df and df[wanted].notna().any() else "macs"


def _cost_text(v: Any, cost: str) -> str:
    """A cost value with its unit, for sentences."""
    if cost == "latency_ms":
        return f"{_ms(v)} ms"
    return f"{_mparams(v)}M params" if cost == "params" else f"{_mmacs(v)} MMACs"


_COST_WORD = {"macs": "MACs", "params": "parameters", "latency_ms": "latency"}


def pareto_table(df: pd.DataFrame, metric: str = "val_acc", cost: str = "macs") -> Table:
    """The search's Pareto front, most accurate first (the rows ``nas-harness export --by pareto`` ranks)."""
    front = pareto_front(df, cost, metric).sort_values("front_rank")
    rows = [[str(int(r["front_rank"])), str(r["name"]), _pct(r["val_acc"]), _pct(r["test_acc"]), _mmacs(r["macs"]),
             _mparams(r["params"]), _ms(r.get("latency_ms")), f"{r['epochs']:g}" if r["epochs"] == r["epochs"] else "",
             str(r["arch"])] for _, r in front.iterrows()]
    return _drop_empty(Table(["rank", "trial", "val acc %", "test acc %", "MMACs", "params (M)", "latency ms", "epochs",
                              "arch"], rows, code_columns={8}))


def reference_table(df: pd.DataFrame, metric: str = "val_acc", cost: str = "macs") -> Table:
    """Reference archs and which search front points dominate them (cheaper and at least as accurate)."""
    front = pareto_front(df, cost, metric)
    refs = eligible(df, cost, metric, include_reference=True)
    refs = refs[refs["is_reference"]]
    rows = []
    for _, r in refs.iterrows():
        dom = dominated_by(front, float(r[cost]), float(r[metric]), cost, metric)
        rows.append([str(r["name"]), _pct(r["val_acc"]), _pct(r["test_acc"]), _mmacs(r["macs"]),
                     _mparams(r["params"]), _ms(r.get("latency_ms")), ", ".join(dom["name"]) or "none", str(r["arch"])])
    return _drop_empty(Table(["reference", "val acc %", "test acc %", "MMACs", "params (M)", "latency ms",
                              "dominated by", "arch"], rows, code_columns={7}))


def _drop_empty(t: Table) -> Table:
    """Drop columns nobody filled (e.g. test accuracy when the study did not evaluate the test split)."""
    keep = [i for i in range(len(t.header)) if not t.rows or any(r[i] for r in t.rows)]
    code = {keep.index(i) for i in t.code_columns if i in keep}
    return Table([t.header[i] for i in keep], [[r[i] for i in keep] for r in t.rows], code)


def _verdict(df: pd.DataFrame, metric: str, cost: str = "macs") -> list[str]:
    front = pareto_front(df, cost, metric)
    refs = eligible(df, cost, metric, include_reference=True)
    refs = refs[refs["is_reference"]]
    lines = []
    if not front.empty:
        best = front.sort_values("front_rank").iloc[0]
        lines.append(f"Most accurate search arch: {best['name']} with {_pct(best[metric])}% {metric} at "
                     f"{_cost_text(best[cost], cost)}.")
    for _, r in refs.iterrows():
        dom = dominated_by(front, float(r[cost]), float(r[metric]), cost, metric)
        beat = (f"beaten: {', '.join(dom['name'])} {'is' if len(dom) == 1 else 'are'} cheaper and at least as "
                "accurate" if len(dom) else "not dominated by any search arch")
        lines.append(f"Reference {r['name']} ({_pct(r[metric])}% at {_cost_text(r[cost], cost)}): {beat}.")
    if refs.empty:
        lines.append("No reference archs (user attr `reference`) in this study: nothing to compare against.")
    return lines


def _settings(df: pd.DataFrame, storage: str) -> list[str]:
    cfg = df.attrs.get("config") or {}
    counts = df["outcome"].value_counts().to_dict()
    full = int((df["full_budget"] & ~df["is_reference"]).sum())
    res = df["macs_resolution"].dropna().unique()
    items = [
        f"Study `{df.attrs.get('study_name')}` in `{storage}`",
        f"Objective: {df.attrs.get('objective') or 'unknown'} (metrics: "
        f"{', '.join(df.attrs.get('metric_names') or []) or 'n/a'}; directions: {', '.join(df.attrs['directions'])})",
        "Trials: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + f"; {full} search trials ran their full budget; {int(df['is_reference'].sum())} reference archs",
    ]
    if cfg.get("sampler"):
        items.append(f"Sampler: `{json.dumps(cfg['sampler'], sort_keys=True)}`")
    if cfg.get("data"):
        items.append(f"Proxy data: `{json.dumps(cfg['data'], sort_keys=True)}`")
    if cfg.get("train"):
        items.append(f"Training recipe: `{json.dumps(cfg['train'], sort_keys=True)}`")
    if len(res) == 1:
        items.append(f"MACs are analytic, counted at {int(res[0])} px input (fvcore convention: 1 MAC = 1 FLOP)")
    if "latency_ms" in df and df["latency_ms"].notna().any():
        lat = cfg.get("latency") or {}
        items.append("Latency (ms) is predicted from the per-device lookup table before training (nas_harness.latency)"
                     + (f": `{json.dumps(lat, sort_keys=True)}`" if lat else " with the default [latency] settings"))
    return items


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
        f"spec = TrialSpec(\n    arch=parse_arch({arch!r}),\n"
        f"    data=ProxyConfig.from_dict({cfg.get('data') or {}!r}),\n"
        f"    train=TrainConfig.from_dict({train!r}),  # 4x the search budget\n"
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
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    blocks: list[Block] = [Heading(f"Study report: {name}", 1), Para(f"Generated {stamp} by `nas-harness report`.")]
    blocks += [Heading("Settings"), Bullets(_settings(df, storage))]
    cost = study_cost(df)
    blocks += [Heading("Result at a glance"), Bullets(_verdict(df, metric, cost))]
    if eligible(df, cost, metric, include_reference=True).shape[0]:
        ref = reference or default_reference_point(df, cost)
        hv = hypervolume(df, ref, cost=cost)
        refs = df[df["is_reference"]]
        hv_ref = hypervolume(refs, ref, cost=cost, include_reference=True) if not refs.empty else None
        blocks.append(Para(
            f"Hypervolume (accuracy up, {_COST_WORD[cost]} down; fraction of the box up to the reference point "
            f"{_cost_text(ref.cost, cost)}, accuracy {ref.acc:.0%}): search front {hv:.4f}"
            + (f", reference archs alone {hv_ref:.4f}." if hv_ref is not None else ".")))
    blocks += [Heading("Pareto front (search trials, complete, full budget)"),
               Para(f"Maximise {metric}, minimise {_COST_WORD[cost]}. `#N` is Optuna trial N; rank 1 is the most "
                    "accurate."),
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
        Code(f"nas-harness info '{arch}'", "sh"),
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
    out = Path(out_dir) if out_dir else (src.folder or Path("results") / src.study_name)
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
    md.write_text(to_markdown(blocks))
    page.write_text(to_html(blocks, f"Study report: {src.study_name}"))
    return ReportPaths(md, page, tables, figs)
