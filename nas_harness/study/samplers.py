"""Optuna samplers and pruners for a study, and the reference archs a study can be seeded with.

Reference archs (B0 and scaled/trimmed variants) are *projected* onto the study's space — every stage
choice snapped to the nearest allowed value — so they can be enqueued even when the space does not
contain them exactly.  Enqueued trials carry the user attribute ``reference`` (their name).
"""

from __future__ import annotations

import re
from typing import Any

from nas_harness.errors import ConfigError
from nas_harness.objectives import Objective

_REF_RE = re.compile(r"^(b0|base)(?:-(w|d)(\d+(?:\.\d+)?)|-(nose|k3|k5|e3|e4))?\Z")


def make_sampler(cfg: Any, objective: Objective | None, seed: int, space: Any = None) -> Any:
    """Build the ``[sampler]`` table's sampler.

    Budgets need no ``constraints_func`` (deprecated in Optuna 5): every trial's constraint values are stored
    in ``system_attrs['constraints']`` before it is told, where TPE/NSGA-II read them.  TPE uses the
    constant liar, so concurrent workers do not all propose the same arch.  A grid study enqueues the grid
    itself (every arch exactly once, :func:`nas_harness.study.search.grid_candidates`), so its sampler is
    never asked for parameters.  A study on a benchmark table (``cfg.table``, set from ``[evaluator] kind =
    "table"``) gets the sampler wrapped in :class:`~nas_harness.tables.RecordSampler`: it proposes the table's
    records only (random: without replacement; model-based: the nearest record not yet taken), each at most once.
    """
    import optuna

    kind = cfg.kind
    if kind == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.n_startup_trials, multivariate=True,
                                             constant_liar=True)
    elif kind == "nsgaii":
        sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=cfg.population_size)
    elif kind in ("random", "grid"):
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        raise ConfigError(f"sampler.kind: {kind!r}; allowed values: 'tpe', 'nsgaii', 'random', 'grid'")
    table = getattr(cfg, "table", None)
    if table is None or space is None:
        return sampler
    from nas_harness.tables import table_sampler

    return table_sampler(sampler, table, space, seed, objective.cost_key if objective is not None else None)


def make_pruner(cfg: Any) -> Any:
    """Build the ``[pruner]`` table's pruner; steps are epochs (intermediate values are reported per epoch)."""
    import optuna

    kind = cfg.kind
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.startup_trials, n_warmup_steps=cfg.warmup_epochs)
    if kind == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=cfg.min_epochs,
                                                      reduction_factor=cfg.reduction_factor)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=cfg.min_epochs, reduction_factor=cfg.reduction_factor)
    raise ConfigError(f"pruner.kind: {kind!r}; allowed values: 'none', 'median', 'sha', 'hyperband'")


def reference_arch(name: str, base: Any) -> Any:
    """The arch behind a reference name: ``b0`` / ``base`` plus an optional variant suffix
    ``-w<x>`` (width x), ``-d<x>`` (depth x), ``-nose`` (no SE), ``-k3``/``-k5`` (all kernels),
    ``-e3``/``-e4`` (expansion of every MBConv stage); anything else is parsed as an arch string."""
    from nas_harness.presets import efficientnet_b0, resolve_arch
    from nas_harness.scaling import scale_arch

    m = _REF_RE.match(name)
    if m is None:
        try:
            return resolve_arch(name)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"sampler.enqueue: {name[:80]!r} is neither a reference name (b0, b0-w0.5, b0-d0.5, "
                              f"b0-nose, b0-k3, base, ...) nor an arch: {exc}") from None
    arch = efficientnet_b0() if m.group(1) == "b0" else base
    if m.group(2) == "w":
        arch = scale_arch(arch, width=float(m.group(3)))
    elif m.group(2) == "d":
        arch = scale_arch(arch, depth=float(m.group(3)))
    elif m.group(4) == "nose":
        arch = arch.replace_stages(se=None)
    elif m.group(4) in ("k3", "k5"):
        arch = arch.replace_stages(kernel=int(m.group(4)[1]))
    elif m.group(4) in ("e3", "e4"):
        idx = [i for i, st in enumerate(arch.stages, start=1) if st.expand != 1]
        arch = arch.replace_stages(stages=idx, expand=int(m.group(4)[1]))
    return arch


def project_params(space: Any, arch: Any) -> dict[str, Any]:
    """Optuna params of the space member nearest to ``arch`` (stage by stage, nearest choice per field)."""
    from nas_harness.arch import make_divisible

    base = space.base
    if len(arch.stages) != len(base.stages):
        raise ConfigError(f"sampler.enqueue: the arch has {len(arch.stages)} stages, the space "
                          f"{len(base.stages)}; cannot adapt it")
    params: dict[str, Any] = {}
    for i, (st, bst, sc) in enumerate(zip(arch.stages, base.stages, space.stages), start=1):
        params[f"s{i}_kernel"] = min(sc.kernels, key=lambda k: (abs(k - st.kernel), k))
        params[f"s{i}_expand"] = min(sc.expands, key=lambda e: (abs(e - st.expand), e))
        want_se = st.se is not None
        params[f"s{i}_se"] = want_se if want_se in sc.se else sc.se[0]
        params[f"s{i}_repeats"] = min(sc.repeats, key=lambda r: (abs(r - st.repeats), r))
        params[f"s{i}_width"] = min(sc.widths, key=lambda w: (abs(make_divisible(bst.channels * w) - st.channels), w))
    return params


def reference_trials(space: Any, names: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(name, params) for each requested reference; validates every name before anything is enqueued."""
    return [(name, project_params(space, reference_arch(name, space.base))) for name in names]
