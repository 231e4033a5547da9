"""Write a study's standard figure set (what ``nas-harness plot`` and the end of a search run produce).

Every figure takes its cost axis from the study (:func:`nas_harness.results.study_cost`); the hypervolume's
reference point is in that cost's units, the same the report states.  The folder keeps a small manifest
(:data:`MANIFEST`) of the files the harness wrote there for each study, so figures of an earlier run that this
run does not draw again (an ``accuracy_by_<choice>`` of another choice, a cost axis the study no longer has)
are removed; files the harness did not write are never touched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from nas_harness._config import RESULTS_DIR, write_text
from nas_harness.errors import ConfigError
from nas_harness.plots._style import save
from nas_harness.plots.importance import plot_importance
from nas_harness.plots.progress import plot_progress
from nas_harness.plots.scatter import plot_accuracy_vs_cost, plot_by_choice, plot_fronts
from nas_harness.results import ReferencePoint, load_study, resolve_source, study_cost, trials_frame

log = logging.getLogger(__name__)
FIGURES_DIR = "figures"
#: Per-folder record of the figure files the harness wrote, by study: {study name: [file names]}.
MANIFEST = ".nas-harness-figures.json"


def _read_manifest(out: Path) -> dict[str, list[str]]:
    try:
        data = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): [str(n) for n in v] for k, v in data.items() if isinstance(v, list)} \
        if isinstance(data, dict) else {}


def remove_stale(out: Path, study_name: str, written: list[Path]) -> list[Path]:
    """Delete the files this folder's manifest lists for ``study_name`` that this run did not write again,
    then record ``written`` as the study's figures; returns the removed paths.  Only plain file names listed
    by the harness itself are removed (never a path outside ``out``, never a file it did not write)."""
    manifest = _read_manifest(out)
    now = {p.name for p in written}
    removed = []
    for name in manifest.get(study_name, []):
        path = out / name
        if name in now or Path(name).name != name or not path.is_file():
            continue
        path.unlink()
        removed.append(path)
    manifest[study_name] = sorted(now)
    if written or (out / MANIFEST).exists():
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    for path in removed:
        log.info("removed %s: an earlier run's figure this run does not draw", path)
    return removed


def _out_dir(folder: Path | None, study_name: str, out_dir: str | Path | None) -> Path:
    if out_dir is not None:
        return Path(out_dir)
    return (folder if folder is not None else Path(RESULTS_DIR) / study_name) / FIGURES_DIR


def _default_choice(df, importances: dict[str, float] | None) -> str | None:
    if importances:
        return next(iter(importances))
    for c in ("s5_se", "s5_kernel"):
        if c in df.columns and df[c].notna().any():
            return c
    return None


def write_study_figures(source: str | Path, study_name: str | None = None, *, out_dir: str | Path | None = None,
                        formats: Sequence[str] = ("png", "svg"), choice: str | None = None,
                        metric: str = "val_acc", reference: ReferencePoint | None = None,
                        evaluator: str = "ped_anova") -> list[Path]:
    """All figures of one study into ``<study folder>/figures`` (or ``out_dir``); returns the written paths.

    Figures that need more data than the study has (e.g. importance with < 2 completed trials) are skipped
    with a log message rather than failing the caller (typically the end of a search run).  ``reference`` is
    the hypervolume reference point in the study's cost units (MACs, parameters or ms).  Figures this folder
    holds from an earlier run of the same study that this run does not draw are removed (:func:`remove_stale`).
    """
    from nas_harness.plots.importance import param_importances

    src = resolve_source(source, study_name)
    study = load_study(src)
    df = trials_frame(study)
    out = _out_dir(src.folder, src.study_name, out_dir)
    paths: list[Path] = []
    cost = study_cost(df)
    have_cost = df[cost].notna().any()

    def attempt(stem: str, make) -> None:
        try:
            fig = make()
        except ConfigError as exc:
            log.info("skipping %s: %s", stem, exc)
            return
        paths.extend(save(fig, out, stem, formats))

    if have_cost:
        attempt("accuracy_vs_macs", lambda: plot_accuracy_vs_cost(df, "macs", metric))
    if df["params"].notna().any():
        attempt("accuracy_vs_params", lambda: plot_accuracy_vs_cost(df, "params", metric))
    if df["latency_ms"].notna().any():  # studies that record latency ([latency] table or cost = "latency")
        attempt("accuracy_vs_latency", lambda: plot_accuracy_vs_cost(df, "latency_ms", metric))
    if cost not in ("macs", "params", "latency_ms"):  # a benchmark table's measurement (cost = "table:...")
        attempt(f"accuracy_vs_{cost}", lambda: plot_accuracy_vs_cost(df, cost, metric))
    if have_cost:
        attempt("hypervolume", lambda: plot_progress([df], metric="hypervolume", reference=reference, cost=cost))
    done = df[(df["state"] == "COMPLETE") & df["full_budget"]]
    if df.attrs.get("objective") == "reward" and done["reward"].notna().any():
        attempt("best_reward", lambda: plot_progress([df], metric="best_reward"))
    elif done["val_acc"].notna().any():
        attempt("best_val_acc", lambda: plot_progress([df], metric="best_val_acc"))
    try:
        importances = param_importances(study, metric, evaluator)
    except ConfigError as exc:
        log.info("skipping importance: %s", exc)
        importances = None
    if importances:
        attempt("importance", lambda: plot_importance(study, metric, evaluator))
    chosen = choice or _default_choice(df, importances)
    if chosen is not None and have_cost:
        if choice is not None:  # an explicit choice that does not exist is the user's error: say so
            paths.extend(save(plot_by_choice(df, chosen, cost, metric=metric), out, f"accuracy_by_{chosen}",
                              formats))
        else:
            attempt(f"accuracy_by_{chosen}", lambda: plot_by_choice(df, chosen, cost, metric=metric))
    remove_stale(out, src.study_name, paths)
    return paths


def write_comparison_figures(sources: Sequence[tuple[str | Path, str | None]], out_dir: str | Path,
                             formats: Sequence[str] = ("png", "svg"), metric: str = "val_acc",
                             reference: ReferencePoint | None = None) -> list[Path]:
    """Hypervolume-over-trials and overlaid Pareto fronts of several studies, sharing one reference point."""
    if len(sources) < 2:
        raise ConfigError(f"compare: need at least 2 studies, got {len(sources)}")
    frames, labels = [], []
    for source, name in sources:
        src = resolve_source(source, name)
        frames.append(trials_frame(load_study(src)))
        labels.append(src.study_name if src.study_name not in labels else f"{src.study_name} ({src.label})")
    out = Path(out_dir)
    costs = {study_cost(f) for f in frames}
    cost = costs.pop() if len(costs) == 1 else "macs"  # studies on different costs meet on MACs
    paths = save(plot_progress(frames, labels, "hypervolume", reference, cost), out, "compare_hypervolume", formats)
    paths += save(plot_fronts(frames, labels, cost, metric=metric), out, "compare_fronts", formats)
    objectives = {f.attrs.get("objective") for f in frames}
    if objectives == {"reward"}:
        paths += save(plot_progress(frames, labels, "best_reward"), out, "compare_best_reward", formats)
    return paths
