"""The scaling-curves report: per-point table, marginal gains, compound vs single at matched MACs, three figures
(EfficientNet Figures 3, 4 and 8 on the proxy), written as Markdown and HTML from one document
(:mod:`nas_harness.report.document`) plus CSV files.  Everything is derived from the stored runs, so
``--report-only`` redraws it at any time (e.g. for a partial run).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_harness._config import write_text
from nas_harness.evaluation.store import StoredRun
from nas_harness.report.document import Block, Bullets, Heading, Image, Para, Table, to_html, to_markdown, write_csv
from nas_harness.results.stats import Summary

from .config import NATIVE_PX, SINGLE, CurvePoint, ScalingCurvesConfig
from .runner import network_macs
from .stats import MATCH_WORDS, CurveData, Match, Segment, marginal_gains, match_at_macs, point_summaries, stops_gaining

__all__ = ["CurvesReport", "analyse", "write_report"]


@dataclass
class CurvesReport:
    """Everything the report says: per curve its points (:class:`CurveData` on the chosen MACs axis), their
    summaries, the MACs of both conventions per point, the steps' gains, the saturation sentence and the
    compound-vs-single matches."""

    curves: dict[str, CurveData]
    points: dict[str, list[CurvePoint]]
    summaries: dict[str, list[Summary]]
    macs: dict[str, dict[str, int]]  # network key -> deployed / proxy / params
    segments: dict[str, list[Segment]]
    saturation: dict[str, str]
    matches: list[Match] = field(default_factory=list)
    metric: str = "test_acc"


def analyse(cfg: ScalingCurvesConfig, records: Sequence[StoredRun], num_classes: int) -> CurvesReport:
    """Turn the stored runs into curves, gains and matches (failed runs are left out of every statistic)."""
    metric = "test_acc" if cfg.trial.evaluate_test else "val_acc"
    acc: dict[str, dict[int, float]] = {}
    for r in records:
        v = r.metrics.get(metric)
        if r.state == "ok" and v is not None and math.isfinite(float(v)):
            acc.setdefault(r.group, {})[int(r.seed)] = float(v)
    macs = {k: network_macs(cfg, p, num_classes) for k, p in cfg.networks().items()}
    axis = cfg.curves.macs
    curves: dict[str, CurveData] = {}
    points: dict[str, list[CurvePoint]] = {}
    for p in cfg.points:
        points.setdefault(p.curve, []).append(p)
    for name, pts in points.items():
        curves[name] = CurveData(name, [p.label for p in pts], [macs[p.key][axis] for p in pts],
                                 [acc.get(p.key, {}) for p in pts])
    summaries = {n: point_summaries(c) for n, c in curves.items()}
    segments = {n: marginal_gains(c) for n, c in curves.items() if n != "compound"}
    saturation = {n: stops_gaining(curves[n], s) for n, s in segments.items()}
    matches = []
    if "compound" in curves:
        comp = curves["compound"]
        for p, m, a in zip(points["compound"], comp.macs, comp.acc):
            for n in SINGLE:
                if n in curves:
                    same = next((q.label for q in points[n] if q.key == p.key), None)
                    matches.append(match_at_macs(p.label, m, a, curves[n], same_as=same))
    return CurvesReport(curves, points, summaries, macs, segments, saturation, matches, metric)


def _pct(x: float) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.2f}"


def _pp(x: float) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:+.2f}"


def _mega(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n < 1e9 else f"{n / 1e9:.3f}G"


def _ci(s: Summary) -> str:
    return f"{_pct(s.mean)} [{_pct(s.ci_low)}, {_pct(s.ci_high)}]" if s.n >= 2 else _pct(s.mean)


def macs_text(cfg: ScalingCurvesConfig, num_classes: int) -> str:
    """What the x axis counts (both conventions are in the tables)."""
    t, d = cfg.trial, cfg.data
    dep = (f"deployed MACs: the network at trial.macs_resolution {t.macs_resolution} px x r (rounded), "
           f"{t.macs_num_classes or num_classes}-class head, 3-channel input, the arch's own stem")
    prox = (f"proxy MACs: the trained network at its own resolution (data.resolution {d.resolution} px x r), "
            f"{num_classes} classes, {d.channels} input channel(s), stem stride {t.stem_stride or 'as arch'}")
    first, second = (dep, prox) if cfg.curves.macs == "deployed" else (prox, dep)
    return (f"x axis: {first}; also tabulated: {second} (fvcore convention, 1 multiply-add = 1 MAC = 1 flop, "
            "as the paper's FLOPS).")


def resize_text(cfg: ScalingCurvesConfig) -> str:
    """How each variant's images reach its resolution."""
    d = cfg.data
    pxs = sorted({p.resolution for p in cfg.points})
    native = NATIVE_PX.get(d.dataset)
    if d.dataset in ("folder", "synthetic"):
        how = "loaded by the data set's loader directly at each variant's resolution"
        up = ""
    else:
        how = (f"resized from the native {native} px with bilinear interpolation (antialiased when shrinking; "
               "torch.nn.functional.interpolate), never padded")
        above = [p for p in pxs if p > native]
        up = (f" Resolutions above {native} px ({', '.join(map(str, above))} px) are upsampled: they add pixels "
              "but no detail, unlike the paper's ImageNet images." if above else
              f" Every resolution is at most the native {native} px, so a larger resolution shows real detail.")
    return (f"Images of each variant: {how}, to round(data.resolution {d.resolution} px x r) = "
            f"{', '.join(map(str, pxs))} px.{up}")


def _settings(cfg: ScalingCurvesConfig, records: Sequence[StoredRun], rep: CurvesReport) -> str:
    d, t = cfg.data, cfg.train
    budget = f"{t.epochs:g} epoch(s)" if t.epochs is not None else f"{t.steps} steps"
    ok = [r for r in records if r.state == "ok"]
    devices = sorted({str(r.metrics.get("device")) for r in ok if r.metrics.get("device")})
    total = sum(float(r.metrics.get("wall_time_s") or 0.0) for r in ok)
    a, b, g = cfg.coefficients
    n = f"train_subset={d.train_subset}" if d.train_subset else f"per_class={d.per_class}" if d.per_class else "all"
    base = cfg.base + (f" x width {cfg.base_width:g}, depth {cfg.base_depth:g}"
                       if (cfg.base_width, cfg.base_depth) != (1.0, 1.0) else "")
    return (f"Base: `{base}`; data: {d.dataset} ({n}, val_size={d.val_size}), base resolution {d.resolution} px, "
            f"{d.channels} channel(s); stem stride {cfg.trial.stem_stride or 'as arch'}; training: {budget}, batch "
            f"{t.batch_size}, {t.optimizer} lr {t.lr}, {t.schedule}; seeds {list(cfg.seeds)} (paired: seed s is the "
            f"same data order for every variant); device {', '.join(devices) or '?'}; total run time "
            f"{total / 60:.1f} min.  Metric: {'test' if rep.metric == 'test_acc' else 'validation'} accuracy, mean "
            f"and 95% Student-t interval over seeds (clipped to [0, 100] %; none with one seed).  Compound scaling: "
            f"alpha={a:g}, beta={b:g}, gamma={g:g} "
            f"(alpha*beta^2*gamma^2 = {a * b * b * g * g:.3f}), from {cfg.coefficient_source}.  Every variant is "
            f"`nas-harness scale ARCH --phi P --alpha D --beta W --gamma R` of the base.")


def _points_table(rep: CurvesReport) -> Table:
    head = ["curve", "point", "width", "depth", "res px", "deployed MACs", "proxy MACs", "params", "runs",
            "acc % [95% CI]"]
    rows = []
    for name, pts in rep.points.items():
        for p, s in zip(pts, rep.summaries[name]):
            m = rep.macs[p.key]
            rows.append([name, p.label, f"{p.width:.3f}", f"{p.depth:.3f}", str(p.resolution), _mega(m["deployed"]),
                         _mega(m["proxy"]), _mega(m["params"]), str(s.n), _ci(s)])
    return Table(head, rows)


def _gains_table(rep: CurvesReport) -> Table:
    head = ["curve", "step", "MACs x", "gain per doubling of MACs, pp [95% CI]", "pairs", "verdict"]
    rows = []
    for name, segs in rep.segments.items():
        for s in segs:
            g = s.gain
            ci = f" [{_pp(g.ci_low)}, {_pp(g.ci_high)}]" if g.n >= 2 and not g.constant else ""
            rows.append([name, f"{s.start} -> {s.end}", f"{s.macs_end / s.macs_start:.2f}", f"{_pp(g.mean)}{ci}",
                         str(g.n), s.words])
    return Table(head, rows)


def _match_table(rep: CurvesReport) -> Table:
    head = ["compound", "MACs", "vs curve", "matched between", "Δ compound − curve, pp [95% CI]", "pairs", "verdict"]
    rows = []
    for m in rep.matches:
        d = m.delta
        between = "–" if m.between is None else f"{m.between[0]} .. {m.between[1]} (t={m.t:.2f})"
        delta = "–" if d is None else _pp(d.mean) + (f" [{_pp(d.ci_low)}, {_pp(d.ci_high)}]"
                                                      if d.n >= 2 and not d.constant else "")
        rows.append([m.compound, _mega(m.macs), m.curve, between, delta, "–" if d is None else str(d.n), m.verdict])
    return Table(head, rows)


def _match_bullets(rep: CurvesReport) -> list[str]:
    out = []
    by_point: dict[str, list[Match]] = {}
    for m in rep.matches:
        by_point.setdefault(m.compound, []).append(m)
    for label, ms in by_point.items():
        said = [f"{MATCH_WORDS.get(m.verdict, m.verdict)} {m.curve}" if m.verdict in MATCH_WORDS
                else f"{m.curve}: {m.verdict}" for m in ms]
        out.append(f"compound {label}: " + "; ".join(said))
    return out


def _band(ax: Any, xs: list[float], ss: list[Summary], labels: list[str], color: Any, name: str,
          annotate: bool = True, marker: str = "o") -> None:
    pts = [(x, s, lab) for x, s, lab in zip(xs, ss, labels) if s.n > 0]
    if not pts:
        return
    x = [p[0] for p in pts]
    y = [100 * p[1].mean for p in pts]
    ax.plot(x, y, marker=marker, ms=3, color=color, label=name)
    band = [(p[0], 100 * p[1].ci_low, 100 * p[1].ci_high) for p in pts if p[1].n >= 2]
    if len(band) >= 2:
        ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color=color, alpha=0.18,
                        lw=0)
    elif band:
        bx, lo, hi = band[0]
        by = y[x.index(bx)]
        ax.errorbar([bx], [by], yerr=[[by - lo], [hi - by]], color=color, capsize=2)
    if annotate:
        for xi, yi, (_, _, lab) in zip(x, y, pts):
            ax.annotate(lab, (xi, yi), textcoords="offset points", xytext=(2, -7), fontsize=5, color=color)


def _axis(ax: Any, xs: list[float], div: float, unit: str, ylabel: str | None) -> None:
    from nas_harness.plots._style import log_cost_axis

    vals = [x for x in xs if x > 0]
    if vals:
        log_cost_axis(ax, min(vals), max(vals))
    ax.set_xlabel(unit)
    if ylabel:
        ax.set_ylabel(ylabel)


def write_figures(cfg: ScalingCurvesConfig, rep: CurvesReport, out: Path) -> list[Path]:
    """Figure 3 (one panel per single dimension), Figure 4 (width at fixed depth/resolution) and Figure 8
    (compound vs single) as PNG and SVG: accuracy vs MACs (log x), mean and 95% interval band over seeds."""
    import seaborn as sns

    from nas_harness.plots._style import WIDE, cost_unit, legend, new_figure, paper_style, save

    every = [m for c in rep.curves.values() for m in c.macs]
    if not every or not any(s.n for ss in rep.summaries.values() for s in ss):
        return []
    div, unit = cost_unit("macs", every)
    unit = f"{cfg.curves.macs} {unit} (log)"
    ylabel = f"{'test' if rep.metric == 'test_acc' else 'val'} acc (%; mean, 95% t interval)"
    colors = dict(zip([*SINGLE, "compound"], sns.color_palette("colorblind", 4)))
    paths: list[Path] = []
    single = [n for n in SINGLE if n in rep.curves]
    if single:
        with paper_style():
            fig, axes = new_figure((2.4 * len(single), 2.4), ncols=len(single))
            axes = list(axes) if len(single) > 1 else [axes]
            for ax in axes[1:]:
                ax.sharey(axes[0])  # one accuracy scale: the gains of the dimensions compare at a glance
            for i, (ax, n) in enumerate(zip(axes, single)):
                c = rep.curves[n]
                xs = [m / div for m in c.macs]
                _band(ax, xs, rep.summaries[n], list(c.labels), colors[n], f"{n} only")
                _axis(ax, xs, div, unit, ylabel if i == 0 else None)
                ax.set_title(f"scale {n}")
            fig.suptitle(f"{cfg.name}: single-dimension scaling (EfficientNet Fig. 3)", fontsize=7.5)
            paths += save(fig, out, "fig3_single")
    panel = [n for n in rep.curves if n.startswith("width (")]
    if panel:
        with paper_style():
            fig, ax = new_figure()
            names = (["width"] if "width" in rep.curves else []) + panel
            pal = sns.color_palette("deep", len(names))
            xs_all = []
            for col, n in zip(pal, names):
                c = rep.curves[n]
                xs = [m / div for m in c.macs]
                xs_all += xs
                _band(ax, xs, rep.summaries[n], list(c.labels), col, "d=1, r=1" if n == "width" else n[7:-1],
                      annotate=False)
            _axis(ax, xs_all, div, unit, ylabel)
            ax.set_title("width at fixed depth/resolution (Fig. 4)")
            legend(ax, loc="best")
            paths += save(fig, out, "fig4_width_panel")
    if "compound" in rep.curves:
        with paper_style():
            fig, ax = new_figure(WIDE if len(single) > 1 else (3.5, 2.6))
            xs_all = []
            for n in [*single, "compound"]:
                c = rep.curves[n]
                xs = [m / div for m in c.macs]
                xs_all += xs
                _band(ax, xs, rep.summaries[n], list(c.labels), colors[n],
                      "compound" if n == "compound" else f"{n} only", annotate=n == "compound",
                      marker="s" if n == "compound" else "o")
            _axis(ax, xs_all, div, unit, ylabel)
            ax.set_title("compound vs single-dimension scaling (Fig. 8)")
            legend(ax, loc="best")
            paths += save(fig, out, "fig8_compound")
    return paths




def _csvs(cfg: ScalingCurvesConfig, rep: CurvesReport, records: Sequence[StoredRun], out: Path) -> list[Path]:
    nets = cfg.networks()
    runs = []
    for r in records:
        m = r.metrics
        p = nets.get(r.group)
        runs.append({"network": r.group, "first_point": f"{p.curve} {p.label}" if p else "", "seed": r.seed,
                     "state": r.state, "test_acc": m.get("test_acc"), "val_acc": m.get("val_acc"),
                     "macs": m.get("macs"), "proxy_macs": m.get("proxy_macs"), "resolution": m.get("resolution"),
                     "params": m.get("params"), "train_time_s": m.get("train_time_s"), "device": m.get("device"),
                     "threads": m.get("threads"), "error": r.error,
                     "versions": json.dumps(m.get("versions"), sort_keys=True) if m.get("versions") else None})
    points = []
    for name, pts in rep.points.items():
        for p, s in zip(pts, rep.summaries[name]):
            m = rep.macs[p.key]
            points.append({"curve": name, "point": p.label, "width": p.width, "depth": p.depth, "res_mult": p.res_mult,
                           "phi": p.phi, "resolution": p.resolution, "macs_resolution": p.macs_resolution,
                           "deployed_macs": m["deployed"], "proxy_macs": m["proxy"], "params": m["params"],
                           "n": s.n, "acc_mean": s.mean, "acc_std": s.std, "acc_ci_low": s.ci_low,
                           "acc_ci_high": s.ci_high, "arch": str(p.arch)})
    gains = [{"curve": s.curve, "start": s.start, "end": s.end, "macs_start": s.macs_start, "macs_end": s.macs_end,
              "doublings": s.doublings, "gain_per_doubling": s.gain.mean, "ci_low": s.gain.ci_low,
              "ci_high": s.gain.ci_high, "pairs": s.gain.n, "verdict": s.verdict}
             for segs in rep.segments.values() for s in segs]
    matches = [{"compound": m.compound, "macs": m.macs, "curve": m.curve,
                "between": "" if m.between is None else f"{m.between[0]}..{m.between[1]}", "t": m.t,
                "delta": m.delta.mean if m.delta else None, "ci_low": m.delta.ci_low if m.delta else None,
                "ci_high": m.delta.ci_high if m.delta else None, "pairs": m.delta.n if m.delta else 0,
                "verdict": m.verdict} for m in rep.matches]
    paths = []
    for stem, rows in (("runs", runs), ("points", points), ("gains", gains), ("matched", matches)):
        if rows:
            path = out / f"{stem}.csv"
            write_csv(path, rows)
            paths.append(path)
    return paths


def write_report(cfg: ScalingCurvesConfig, records: Sequence[StoredRun], num_classes: int,
                 out_dir: str | Path | None = None, figure: bool = True) -> tuple[list[Path], str]:
    """Write report.md, report.html, the CSVs and the figures; return the paths and the Markdown text."""
    out = Path(out_dir) if out_dir is not None else cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    rep = analyse(cfg, records, num_classes)
    figs = write_figures(cfg, rep, out) if figure else []
    blocks: list[Block] = [Heading(f"Scaling curves `{cfg.name}`", 1), Para(_settings(cfg, records, rep)),
                           Para(resize_text(cfg)), Para(macs_text(cfg, num_classes))]
    blocks += [Image(p.name, p.stem.replace("_", " ")) for p in figs if p.suffix == ".png"]
    blocks += [Heading("Points"), _points_table(rep)]
    if rep.segments:
        blocks += [Heading("Where each curve stops gaining"),
                   Para("Gain per doubling of MACs between consecutive points, paired over seeds (per seed: accuracy "
                        "difference / log2 of the MACs ratio; paired t interval). A step gains when its 95% interval "
                        "is above 0, loses when below, and is not resolved from 0 otherwise; a curve stops gaining "
                        "after its last step that gains. A gain that is the same on every seed has a zero-width "
                        "interval that measures no noise and is worded as such."),
                   _gains_table(rep), Bullets([f"{n}: {s}" for n, s in rep.saturation.items()])]
    if rep.matches:
        blocks += [Heading("Compound vs single-dimension scaling at matched MACs"),
                   Para("Matching rule: each compound point is compared with each single-dimension curve at the "
                        "compound point's MACs, by linear interpolation in log-MACs between the two points of the "
                        "curve that bracket it, seed by seed; Δ = compound − interpolated curve, paired t interval "
                        "over seeds. Beats / ties with / loses to follow the 95% interval (above 0 / includes 0 / "
                        "below 0); a Δ that is the same on every seed has a zero-width interval that measures no "
                        "noise and is worded as such. A compound point outside a curve's MACs range is not compared "
                        "(no extrapolation); the interpolation assumes accuracy is linear in log-MACs between two "
                        "measured points."),
                   _match_table(rep), Bullets(_match_bullets(rep))]
    failures = [f"{cfg.networks()[r.group].curve} {cfg.networks()[r.group].label} seed {r.seed}: {r.error}"
                for r in records if r.state != "ok" and r.group in cfg.networks()]
    if failures:
        blocks += [Heading("Failed runs"), Bullets(failures)]
    blocks += [Para("These are statements about this proxy (data, resolution range, budget, seeds), not about "
                    "ImageNet; nothing is claimed beyond the 95% intervals.")]
    text = to_markdown(blocks)
    md, page = out / "report.md", out / "report.html"
    write_text(md, text)
    write_text(page, to_html(blocks, f"Scaling curves: {cfg.name}"))
    return [md, page, *_csvs(cfg, rep, records, out), *figs], text
