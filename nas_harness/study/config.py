"""Study files: one TOML file fully describes a search study; validated before anything runs or is written.

Every key, its type, default and allowed values are declared once in :data:`SCHEMA` below (the table is
also rendered by :func:`schema_markdown` for the docs).  ``[space]``, ``[data]`` and ``[train]`` are
validated by their owners (``SearchSpace.from_dict``, ``ProxyConfig.from_dict``, ``TrainConfig.from_dict``).

=====================  ===========  =====================================================================
key                    default      meaning
=====================  ===========  =====================================================================
name                   (required)   study name: Optuna study_name and the folder ``results/<name>/``
description            ""           free text, stored with the study
base                   "b0"         base arch of the space: b0..b7, an arch string, or a file with one
base_width             1.0          width multiplier applied to ``base`` (0.25 = a CPU-sized proxy net)
base_depth             1.0          depth multiplier applied to ``base`` (repeats rounded up)
seed                   0            seeds the sampler and every trial's training
[space]                {}           per-stage choices, see ``nas_harness.space.SearchSpace.from_dict``
[data]                 {}           proxy data set, see ``nas_harness.data.ProxyConfig``
[train]                {}           training recipe/budget, see ``nas_harness.train.TrainConfig``
[trial].stem_stride    none         stem stride override for small proxy images (1 for 28-32 px)
[trial].macs_resolution 224         image size at which MACs are counted for the objective
[trial].macs_num_classes 1000       classifier size at which MACs are counted
[trial].evaluate_test  false        also evaluate each trial on the test split (``test_acc``)
[trial].cache          true         reuse results of identical candidates (arch + proxy + recipe)
[objective].kind       "reward"     reward | budget | multi
[objective].target_macs 400e6       reward: target T of ACC x (MACs/T)^w
[objective].constraint "soft"       reward: soft (alpha=beta=-0.07) | hard (alpha=0, beta=-1) | custom
[objective].alpha      -0.07        reward, custom: exponent when MACs <= T
[objective].beta       -0.07        reward, custom: exponent when MACs > T
[objective].max_macs   0            budget/multi: hard MAC budget (0 = none); over-budget = not trained
[objective].max_params 0            budget/multi: hard parameter budget (0 = none)
[objective].cost       "macs"       multi: second objective, macs | params
[sampler].kind         "tpe"        tpe | nsgaii | random | grid
[sampler].n_startup_trials 10       tpe: random trials before TPE kicks in
[sampler].population_size 20        nsgaii: population size
[sampler].max_grid_size 4096        grid: refuse spaces larger than this
[sampler].enqueue      []           seed trials: "b0", "b0-w0.5", "b0-d0.5", "b0-nose", "b0-k3", arch strings
[pruner].kind          "none"       none | median | sha | hyperband (single-objective only)
[pruner].warmup_epochs 1            median: epochs before pruning may start
[pruner].startup_trials 3           median: trials before pruning may start
[pruner].min_epochs    1            sha/hyperband: minimum resource (epochs)
[pruner].reduction_factor 3         sha/hyperband: reduction factor
[run].n_trials         20           total finished trials the study should reach (resume counts old ones)
[run].timeout_s        0            stop starting trials after this many seconds (0 = no limit)
[run].storage          ""           Optuna storage URL; "" = sqlite results/<name>/study.db;
                                    "journal:<path>" = journal file (several local processes)
[run].results_dir      "results"    parent folder of ``<name>/``
[run].backend          "local"      local | ray
[run].progress         true         terminal progress bar
[run].plots            true         write figures at the end (nas_harness.plots, when available)
[run].heartbeat_s      0            0: on restart, trials left RUNNING are failed and retried (one runner);
                                    >0 (RDB storage, local backend): Optuna heartbeats, so several
                                    workers can share a study and only silent trials are failed
[ray].cpus_per_trial   1.0          CPUs reserved per trial
[ray].gpus_per_trial   0.0          GPUs per trial (fractional ok: 0.25 = 4 trials per GPU)
[ray].max_concurrent   0            concurrent trials (0 = as many as resources allow)
[ray].address          ""           join this cluster ("" = $RAY_ADDRESS or a fresh local Ray)
[ray].num_cpus         0            local Ray only: CPUs to give it (0 = all)
[ray].asha             false        ASHA early stopping (single-objective only)
[ray].asha_grace_epochs 1           ASHA grace period (epochs)
[ray].asha_reduction_factor 3       ASHA reduction factor
[scaling].alphas       [1.0..1.4]   compound-scaling search: depth multipliers to try
[scaling].betas        [1.0..1.3]   width multipliers
[scaling].gammas       [1.0..1.3]   resolution multipliers
[scaling].tolerance    0.1          keep triples with abs(alpha*beta^2*gamma^2 - 2) <= tolerance
[scaling].phi          1.0          compound coefficient at which triples are compared
=====================  ===========  =====================================================================
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_harness.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_MISSING = object()


@dataclass(frozen=True)
class _Key:
    """One key of the schema: type(s), default, and an optional allowed set or numeric range."""

    types: tuple[type, ...]
    default: Any
    choices: tuple[Any, ...] | None = None
    lo: float | None = None
    hi: float | None = None
    items: tuple[type, ...] | None = None  # element types for lists

    def check(self, path: str, value: Any) -> Any:
        ok_types = self.types
        if float in ok_types and int not in ok_types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in ok_types:
            raise ConfigError(f"{path}: expected {_type_names(ok_types)}, got a boolean {value!r}")
        if not isinstance(value, ok_types):
            raise ConfigError(f"{path}: expected {_type_names(ok_types)}, got {type(value).__name__} {value!r}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise ConfigError(f"{path}: {value!r} is not allowed; allowed values: {allowed}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.lo is not None and value < self.lo:
                raise ConfigError(f"{path}: {value!r} is out of range; allowed: >= {self.lo:g}"
                                  + (f" and <= {self.hi:g}" if self.hi is not None else ""))
            if self.hi is not None and value > self.hi:
                raise ConfigError(f"{path}: {value!r} is out of range; allowed: <= {self.hi:g}"
                                  + (f" and >= {self.lo:g}" if self.lo is not None else ""))
        if isinstance(value, list) and self.items is not None:
            for i, item in enumerate(value):
                if isinstance(item, bool) or not isinstance(item, self.items):
                    raise ConfigError(f"{path}[{i}]: expected {_type_names(self.items)}, got {item!r}")
                if self.lo is not None and isinstance(item, (int, float)) and item < self.lo:
                    raise ConfigError(f"{path}[{i}]: {item!r} is out of range; allowed: >= {self.lo:g}")
            value = [float(v) if float in self.items and isinstance(v, int) else v for v in value]
        return value


def _type_names(types: Sequence[type]) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             type(None): "none"}
    return " or ".join(names.get(t, t.__name__) for t in types)


_INT = (int,)
_NUM = (float, int)
_STR = (str,)
_BOOL = (bool,)

# Top-level scalar keys and the keys of each plain section (delegated sections are listed separately).
SCHEMA: dict[str, dict[str, _Key]] = {
    "": {
        "name": _Key(_STR, _MISSING),
        "description": _Key(_STR, ""),
        "base": _Key(_STR, "b0"),
        "base_width": _Key(_NUM, 1.0, lo=0.05, hi=8),
        "base_depth": _Key(_NUM, 1.0, lo=0.05, hi=8),
        "seed": _Key(_INT, 0, lo=0),
    },
    "trial": {
        "stem_stride": _Key(_INT, None, choices=(1, 2)),
        "macs_resolution": _Key(_INT, 224, lo=8, hi=2048),
        "macs_num_classes": _Key(_INT, 1000, lo=1),
        "evaluate_test": _Key(_BOOL, False),
        "cache": _Key(_BOOL, True),
    },
    "objective": {
        "kind": _Key(_STR, "reward", choices=("reward", "budget", "multi")),
        "target_macs": _Key(_NUM, 400e6, lo=1),
        "constraint": _Key(_STR, "soft", choices=("soft", "hard", "custom")),
        "alpha": _Key(_NUM, -0.07, lo=-10, hi=10),
        "beta": _Key(_NUM, -0.07, lo=-10, hi=10),
        "max_macs": _Key(_NUM, 0.0, lo=0),
        "max_params": _Key(_NUM, 0.0, lo=0),
        "cost": _Key(_STR, "macs", choices=("macs", "params")),
    },
    "sampler": {
        "kind": _Key(_STR, "tpe", choices=("tpe", "nsgaii", "random", "grid")),
        "n_startup_trials": _Key(_INT, 10, lo=0),
        "population_size": _Key(_INT, 20, lo=2),
        "max_grid_size": _Key(_INT, 4096, lo=1),
        "enqueue": _Key((list,), [], items=_STR),
    },
    "pruner": {
        "kind": _Key(_STR, "none", choices=("none", "median", "sha", "hyperband")),
        "warmup_epochs": _Key(_INT, 1, lo=0),
        "startup_trials": _Key(_INT, 3, lo=0),
        "min_epochs": _Key(_INT, 1, lo=1),
        "reduction_factor": _Key(_INT, 3, lo=2),
    },
    "run": {
        "n_trials": _Key(_INT, 20, lo=1),
        "timeout_s": _Key(_NUM, 0.0, lo=0),
        "storage": _Key(_STR, ""),
        "results_dir": _Key(_STR, "results"),
        "backend": _Key(_STR, "local", choices=("local", "ray")),
        "progress": _Key(_BOOL, True),
        "plots": _Key(_BOOL, True),
        "heartbeat_s": _Key(_INT, 0, lo=0),
    },
    "ray": {
        "cpus_per_trial": _Key(_NUM, 1.0, lo=0.01),
        "gpus_per_trial": _Key(_NUM, 0.0, lo=0),
        "max_concurrent": _Key(_INT, 0, lo=0),
        "address": _Key(_STR, ""),
        "num_cpus": _Key(_INT, 0, lo=0),
        "asha": _Key(_BOOL, False),
        "asha_grace_epochs": _Key(_INT, 1, lo=1),
        "asha_reduction_factor": _Key(_INT, 3, lo=2),
    },
    "scaling": {
        "alphas": _Key((list,), [1.0, 1.1, 1.2, 1.3, 1.4], items=_NUM, lo=1.0),
        "betas": _Key((list,), [1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3], items=_NUM, lo=1.0),
        "gammas": _Key((list,), [1.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3], items=_NUM, lo=1.0),
        "tolerance": _Key(_NUM, 0.1, lo=0),
        "phi": _Key(_NUM, 1.0, lo=0),
    },
}
# Sections validated by the module that owns them.
DELEGATED = ("space", "data", "train")
_SECTIONS = tuple(k for k in SCHEMA if k) + DELEGATED
_TOP_KEYS = tuple(SCHEMA[""]) + _SECTIONS


@dataclass
class StudyConfig:
    """A validated study file.  ``raw`` keeps the file's dict with defaults filled in (stored in the study)."""

    name: str
    description: str
    base: str
    base_width: float
    base_depth: float
    seed: int
    trial: dict[str, Any]
    objective: dict[str, Any]
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    run: dict[str, Any]
    ray: dict[str, Any]
    scaling: dict[str, Any]
    space: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    # --- derived objects (built lazily; each from its owner's validated from_dict) ---
    def base_arch(self) -> Any:
        from nas_harness.arch import resolve_arch
        from nas_harness.scaling import scale_arch

        try:
            arch = resolve_arch(self.base)
        except ValueError as exc:
            raise ConfigError(f"base: {exc}; allowed: b0..b7, an arch string or a file holding one") from None
        if self.base_width != 1.0 or self.base_depth != 1.0:
            arch = scale_arch(arch, width=self.base_width, depth=self.base_depth)
        return arch

    def search_space(self) -> Any:
        from nas_harness.space import SearchSpace

        return SearchSpace.from_dict(self.space, self.base_arch())

    def proxy_config(self) -> Any:
        from nas_harness.data import ProxyConfig

        return ProxyConfig.from_dict(self.data, where="data")

    def train_config(self) -> Any:
        from nas_harness.train import TrainConfig

        train = dict(self.train)
        train.setdefault("seed", self.seed)
        return TrainConfig.from_dict(train, where="train")

    @property
    def study_dir(self) -> Path:
        return Path(self.run["results_dir"]) / self.name

    @property
    def storage_url(self) -> str:
        return self.run["storage"] or f"sqlite:///{self.study_dir / 'study.db'}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "description": self.description, "base": self.base,
                               "base_width": self.base_width, "base_depth": self.base_depth, "seed": self.seed}
        for sec in _SECTIONS:
            out[sec] = copy.deepcopy(getattr(self, sec))
        return out


def _check_section(where: str, d: Any, keys: dict[str, _Key]) -> dict[str, Any]:
    prefix = f"{where}." if where else ""
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a table, got {type(d).__name__}")
    allowed = tuple(keys) + (_SECTIONS if not where else ())
    for k in d:
        if k not in allowed:
            raise ConfigError(f"{prefix}{k}: unknown key; allowed keys: {', '.join(allowed)}")
    out: dict[str, Any] = {}
    for k, spec in keys.items():
        if k in d:
            out[k] = spec.check(prefix + k, d[k])
        elif spec.default is _MISSING:
            raise ConfigError(f"{prefix}{k}: required key is missing")
        else:
            out[k] = copy.deepcopy(spec.default)
    return out


def validate(d: dict[str, Any], source: str | None = None, *, check_owned: bool = True) -> StudyConfig:
    """Validate a study dict (as read from TOML); fills defaults; raises ConfigError naming the key path.

    ``check_owned`` also runs the owners' validators of [space], [data] and [train] (and resolves ``base``),
    so that a bad value anywhere fails before anything runs.
    """
    top = _check_section("", d, SCHEMA[""])
    name = top["name"]
    if not name or any(c in name for c in "/\\ \t") or name.startswith("."):
        raise ConfigError(f"name: {name!r} is not a valid study name; use letters, digits, '-', '_' and '.'")
    sections: dict[str, dict[str, Any]] = {}
    for sec, keys in SCHEMA.items():
        if sec:
            sections[sec] = _check_section(sec, d.get(sec, {}), keys)
    for sec in DELEGATED:
        value = d.get(sec, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{sec}: expected a table, got {type(value).__name__}")
        sections[sec] = copy.deepcopy(value)
    cfg = StudyConfig(name=name, description=top["description"], base=top["base"],
                      base_width=top["base_width"], base_depth=top["base_depth"], seed=top["seed"],
                      source=source, **sections)
    _check_consistency(cfg)
    if check_owned:
        cfg.search_space()
        cfg.proxy_config()
        cfg.train_config()
    return cfg


def _check_consistency(cfg: StudyConfig) -> None:
    obj, pr, rn, ray = cfg.objective, cfg.pruner, cfg.run, cfg.ray
    if obj["kind"] == "budget" and not (obj["max_macs"] or obj["max_params"]):
        raise ConfigError("objective.max_macs: the budget objective needs max_macs and/or max_params > 0")
    if obj["kind"] == "reward" and obj["constraint"] != "custom":
        obj["alpha"], obj["beta"] = (-0.07, -0.07) if obj["constraint"] == "soft" else (0.0, -1.0)
    if obj["kind"] == "multi" and pr["kind"] != "none":
        raise ConfigError(f"pruner.kind: {pr['kind']!r} is not supported for the multi objective; "
                          "allowed values: 'none'")
    if obj["kind"] == "multi" and ray["asha"]:
        raise ConfigError("ray.asha: ASHA needs a single objective; allowed with objective.kind 'multi': false")
    url = rn["storage"]
    if rn["heartbeat_s"] and url.startswith("journal:"):
        raise ConfigError("run.heartbeat_s: heartbeats need an RDB storage (sqlite:///, postgresql://); "
                          "allowed with a journal storage: 0")
    if url and not (url.startswith("journal:") or "://" in url):
        raise ConfigError(f"run.storage: {url!r} is not a storage URL; allowed: '' (sqlite under results/), "
                          "'sqlite:///path.db', 'postgresql://...', 'journal:path.log'")


def load_study(path: str | Path, overrides: dict[str, Any] | None = None, *,
               check_owned: bool = True) -> StudyConfig:
    """Read and validate a study file; ``overrides`` maps dotted key paths (e.g. 'run.n_trials') to values."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"study file {str(p)!r}: cannot read ({exc.strerror or exc})") from exc
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"study file {str(p)!r}: invalid TOML ({exc})") from exc
    apply_overrides(d, overrides or {})
    return validate(d, source=str(p), check_owned=check_owned)


def apply_overrides(d: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Set dotted key paths in a raw study dict (CLI flags); None values are skipped."""
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, last = dotted.split(".")
        node = d
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{part}: expected a table, got {type(node).__name__}")
        node[last] = value


def schema_markdown() -> str:
    """The key table (path, type, default, allowed) as Markdown, generated from :data:`SCHEMA`."""
    rows = ["| key | type | default | allowed |", "|---|---|---|---|"]
    for sec, keys in SCHEMA.items():
        for k, spec in keys.items():
            path = f"{sec}.{k}" if sec else k
            default = "(required)" if spec.default is _MISSING else repr(spec.default)
            allowed = (", ".join(map(repr, spec.choices)) if spec.choices else
                       " ".join(x for x in (f">= {spec.lo:g}" if spec.lo is not None else "",
                                            f"<= {spec.hi:g}" if spec.hi is not None else "") if x))
            rows.append(f"| `{path}` | {_type_names(spec.types)} | {default} | {allowed} |")
    for sec in DELEGATED:
        rows.append(f"| `[{sec}]` | table | {{}} | validated by its owner module |")
    return "\n".join(rows)

