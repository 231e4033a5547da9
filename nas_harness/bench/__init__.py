"""Benchmark suites behind ``nas-harness bench``.

A suite is one module in this package defining ``SUITE = Suite(name, description, run)`` where
``run(quick: bool) -> dict`` returns JSON-serialisable figures; modules are discovered automatically, so
adding a suite is a one-file job.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nas_harness.errors import ConfigError


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    run: Callable[[bool], dict[str, Any]]


def suites() -> dict[str, Suite]:
    """All suites, by name (importing every non-private module of this package)."""
    found: dict[str, Suite] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        suite = getattr(importlib.import_module(f"{__name__}.{info.name}"), "SUITE", None)
        if isinstance(suite, Suite):
            found[suite.name] = suite
    return dict(sorted(found.items()))


def machine_info() -> dict[str, Any]:
    import torch

    from nas_harness.train.trainer import usable_cores

    cores = usable_cores()
    return {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_cores": cores, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_1min": os.getloadavg()[0],
    }


def run_suites(names: Sequence[str] | None = None, quick: bool = False,
               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the named suites (all when None) and return ``{"machine", "quick", "suites": {name: figures}}``."""
    available = suites()
    names = list(names) if names else list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(f"bench --suite {unknown[0]!r} is unknown; allowed: {', '.join(available)}")
    out: dict[str, Any] = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": quick,
                           "machine": machine_info(), "suites": {}}
    for name in names:
        if log:
            log(f"running suite {name}: {available[name].description}")
        t0 = time.perf_counter()
        res = available[name].run(quick)
        res["suite_time_s"] = round(time.perf_counter() - t0, 2)
        out["suites"][name] = res
    out["machine"]["load_average_1min_end"] = os.getloadavg()[0]
    return out


__all__ = ["Suite", "machine_info", "run_suites", "suites"]
