"""The report's Settings: the study file as readable key/value tables (one per section), with the objective
spelled out (target T, exponent w, budgets, cost), the search space, the run's limits and why it stopped.
The run's limits (``run.n_trials``, ...) are those the latest run of ``search`` asked for (file and flags), not
the first run's that the study's stored settings hold; a changed one also says the value at creation.

Keys are the study file's own (``[data] train_subset``), so a reader can map every row back to the TOML; values
are plain text (lists as ``3, 5``, numbers with ``%g``), never raw JSON dicts.  Keys the study did not set
(``None``) are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nas_harness.report.document import Block, Heading, Para, Table
from nas_harness.results import COST_NAMES, accuracy_note, cost_text, study_cost
from nas_harness.results.export import params_note

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: Sections shown as tables, in this order, with a heading each.
_SECTIONS = (("space", "Search space"), ("sampler", "Sampler"), ("pruner", "Pruner"), ("data", "Proxy data"),
             ("train", "Training recipe"), ("trial", "Trial"), ("evaluator", "Evaluator"), ("latency", "Latency table"))
#: [run] keys worth a row (the rest are machine-specific: storage, results_dir, progress, heartbeat).
_RUN_KEYS = ("n_trials", "timeout_s", "max_failures", "backend")


def value_text(v: Any) -> str:
    """A study-file value as plain text: ``3, 5`` for lists, ``true``/``false``, numbers with ``%g``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(value_text(x) for x in v) if v else "(none)"
    if isinstance(v, Mapping):
        return "; ".join(f"{k} = {value_text(x)}" for k, x in v.items())
    return str(v)


def _rows(table: Mapping[str, Any], keys: tuple[str, ...] | None = None) -> list[list[str]]:
    items = [(k, table[k]) for k in keys if k in table] if keys else list(table.items())
    return [[str(k), value_text(v)] for k, v in items if v is not None]


def objective_rows(objective: Mapping[str, Any], cost: str) -> list[list[str]]:
    """The objective in words: what is optimised, the target T and exponent w (reward), the budgets."""
    from nas_harness.objectives import Objective

    try:
        obj = Objective.from_config(dict(objective))
    except Exception:  # an older/foreign study: show what it stored
        return _rows(objective)
    rows = [["kind", obj.kind], ["objective", obj.describe()], ["cost", f"{obj.cost} ({COST_NAMES[obj.cost_key]})"]]
    if obj.kind == "reward":
        alpha, beta = obj.exponents
        rows += [["target T", cost_text(obj.target, obj.cost_key)],
                 ["exponent w", f"{alpha:g}" if alpha == beta else f"{alpha:g} if cost <= T, else {beta:g}"],
                 ["constraint", obj.constraint]]
    else:
        for key, what in (("max_macs", "macs"), ("max_params", "params"), ("max_latency_ms", "latency_ms")):
            limit = getattr(obj, key)
            if limit:
                rows.append([key, cost_text(limit, what) if what != "params" else f"{limit:,.0f}"])
    if obj.cost_key != cost:
        rows.append(["note", f"no trial recorded {obj.cost_key} yet: fronts use {cost}"])
    return rows


def _run_value(k: str, v: Any) -> str:
    if k == "timeout_s":
        return f"{value_text(v)} s" if v else "0 (no limit)"
    if k == "max_failures" and not v:
        return "0 (run.n_trials)"
    return value_text(v)


def _run_rows(created: Mapping[str, Any], last: Mapping[str, Any]) -> list[list[str]]:
    """The run's limits as the latest run of ``search`` asked for them (the file with its flags, stored with its
    stop note), else as the study was created; a limit the latest run changed also says the creation's value."""
    rows = []
    for k in _RUN_KEYS:
        now = last.get(k, created.get(k))
        if now is None:
            continue
        text = _run_value(k, now)
        if k in last and created.get(k) is not None and created[k] != now:
            text += f" (asked for by the last run; {_run_value(k, created[k])} when the study was created)"
        rows.append([f"run.{k}", text])
    return rows


def _references(df: pd.DataFrame) -> str:
    """"N reference archs", counted by arch (a failed reference trial and its retry are one arch)."""
    refs = df.loc[df["is_reference"].astype(bool)]
    archs = int(refs["arch"].nunique()) if "arch" in refs else len(refs)
    extra = f" ({len(refs)} trials: failed ones retried)" if len(refs) != archs else ""
    return f"{archs} reference arch{'' if archs == 1 else 's'}{extra}"


def settings_blocks(df: pd.DataFrame, storage: str) -> list[Block]:
    """Headings and key/value tables of the study's settings (``df.attrs['config']``) and its run."""
    cfg = df.attrs.get("config") or {}
    counts = df["outcome"].value_counts().to_dict()
    full = int((df["full_budget"] & ~df["is_reference"]).sum())
    study = [["study", str(df.attrs.get("study_name"))], ["storage", storage]]
    if cfg.get("description"):
        study.append(["description", str(cfg["description"])])
    study += [["trials", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"],
              ["full budget", f"{full} search trials ran their full budget; {_references(df)}"]]
    stop = df.attrs.get("last_stop")
    if isinstance(stop, Mapping) and stop.get("reason"):
        study.append(["last run", f"{stop['reason']} ({stop.get('at', 'time unknown')})"])
    study += _rows(cfg, ("seed",))
    study += _run_rows(cfg.get("run") if isinstance(cfg.get("run"), Mapping) else {},
                       stop.get("run") if isinstance(stop, Mapping) and isinstance(stop.get("run"), Mapping) else {})
    blocks: list[Block] = [Heading("Settings"), Heading("Study", 3), Table(["setting", "value"], study)]
    objective = cfg.get("objective")
    if isinstance(objective, Mapping):
        blocks += [Heading("Objective", 3), Table(["setting", "value"], objective_rows(objective, study_cost(df)))]
    elif df.attrs.get("objective"):
        blocks += [Heading("Objective", 3), Table(["setting", "value"], [["kind", str(df.attrs["objective"])]])]
    for key, title in _SECTIONS:
        table = cfg.get(key)
        if not isinstance(table, Mapping):
            continue
        rows = _rows(table)
        if key == "space":
            rows = _rows(cfg, ("base", "base_width", "base_depth")) + rows
        if key == "train" and table.get("threads") is None and "threads" in df:
            fixed = sorted({int(v) for v in df["threads"].dropna()})
            if len(fixed) == 1:  # omitted in the file: fixed when the study was created, recorded by every trial
                rows.append(["threads", f"{fixed[0]} (fixed when the study was created)"])
        if rows:
            blocks += [Heading(f"{title} ([{key}])", 3), Table(["setting", "value"], rows)]
    res = df["macs_resolution"].dropna().unique()
    notes = []
    if len(res) == 1:
        notes.append(f"MACs are analytic, counted at {int(res[0])} px input (fvcore convention: 1 MAC = 1 FLOP).")
    if "latency_ms" in df and df["latency_ms"].notna().any():
        notes.append("Latency (ms) is predicted from the per-device lookup table before training "
                     "(nas_harness.latency).")
    if df["params"].notna().any():
        notes.append(params_note(df))
    note = accuracy_note(df)
    if note:
        ev = cfg.get("evaluator") if isinstance(cfg.get("evaluator"), Mapping) else {}
        notes.append(f"Evaluator {ev.get('kind')!r}: its accuracies are {note}; `nas-harness fidelity` measures how "
                     "well they rank, `nas-harness confirm` retrains from scratch.")
    blocks += [Para(n) for n in notes]
    return blocks
