"""``flops`` suite: speed of the analytic MAC counter vs. fvcore tracing a built model (and agreement)."""

from __future__ import annotations

import time
from typing import Any

from nas_harness.bench import Suite


def _time(fn: Any, min_time: float) -> tuple[float, Any, int]:
    n, t0, out = 0, time.perf_counter(), None
    while True:
        out = fn()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / n, out, n


def run(quick: bool) -> dict[str, Any]:
    from nas_harness.flops import count_macs, fvcore_macs
    from nas_harness.model import build_model
    from nas_harness.presets import efficientnet, efficientnet_b0
    from nas_harness.scaling import scale_arch

    cases = [("b0_w0.5_proxy32", scale_arch(efficientnet_b0(), width=0.5), 32, 10, 1),
             ("b0_224", efficientnet_b0(), 224, 1000, None)]
    if not quick:
        b3 = efficientnet("b3")
        cases.append(("b3_300", b3.arch, b3.resolution, 1000, None))
    rows = []
    for name, arch, res, ncls, stem in cases:
        t_an, an, n_an = _time(lambda a=arch, r=res, c=ncls, s=stem: count_macs(a, r, num_classes=c, stem_stride=s),
                               0.2 if quick else 1.0)

        def fv(a=arch, r=res, c=ncls, s=stem) -> Any:
            return fvcore_macs(build_model(a, num_classes=c, stem_stride=s).eval(), r)

        t_fv, fvc, n_fv = _time(fv, 0.0 if quick else 2.0)
        rows.append({"case": name, "resolution": res, "analytic_s": t_an, "fvcore_s": t_fv,
                     "speed_ratio": t_fv / t_an, "analytic_macs": an.total, "fvcore_macs": fvc.total,
                     "rel_diff": abs(an.total - fvc.total) / max(1, fvc.total), "analytic_runs": n_an,
                     "fvcore_runs": n_fv})
    ratios = sorted(r["speed_ratio"] for r in rows)
    return {"cases": rows, "min_speed_ratio": ratios[0],
            "note": "fvcore time includes building the model it traces (needed to count that way)"}


SUITE = Suite("flops", "analytic MAC counter vs fvcore (build + trace) speed ratio", run)
