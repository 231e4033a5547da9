"""The ablation file (TOML): what to ablate, with which recipe, over which seeds, where to store runs.

Everything is validated by :func:`load_ablation` before anything is trained; each problem is a one-line
:class:`~nas_harness.errors.ConfigError` naming its key path (e.g. ``train.lr``, ``variant.k5.overrides[0].stage``).

Schema::

    name = "ablation_b0"                  # results go to results/<name>/
    description = "..."                   # optional
    arch = "b0"                           # base arch: 'b0'..'b7', an arch string or a file (default b0)
    variants = ["baseline", "no_se", "no_skip", "neither"]   # built-ins and/or [variant.<name>] below
    baseline = "baseline"                 # what Δ compares against (must be among variants)
    seeds = 3                             # a count (seeds 0..N-1) or an explicit list [0, 7, 42]
    stem_stride = 1                       # optional; 1 = proxy stem for 28-32 px inputs
    storage = "results/ablation_b0/ablation.db"   # optional; SQLite file holding every run
    macs_resolution = 224                 # MACs are counted for the arch (own stem stride) at this size
    macs_num_classes = 10                 # optional; default the data set's classes (params = trained model)

    [variant.k5_stage3]                   # a user-defined variant (see nas_harness.ablation.variants)
    overrides = [{stage = 3, override = "k5_e4"}]

    [data]                                # nas_harness.data.ProxyConfig.from_dict
    [train]                               # nas_harness.train.TrainConfig.from_dict
    [backend]                             # kind = "local" | "ray"; ray: address, cpus_per_trial,
                                          # gpus_per_trial, max_concurrent
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomllib

from nas_harness.errors import ConfigError

from .variants import BUILTIN_VARIANTS, VariantDef, parse_variant_def, resolve_variants

if TYPE_CHECKING:
    from nas_harness.arch import Arch
    from nas_harness.data import ProxyConfig
    from nas_harness.train import TrainConfig

__all__ = ["AblationConfig", "BackendConfig", "load_ablation", "parse_ablation"]

_TOP_KEYS = (
    "name",
    "description",
    "arch",
    "variants",
    "baseline",
    "seeds",
    "stem_stride",
    "storage",
    "macs_resolution",
    "macs_num_classes",
    "variant",
    "data",
    "train",
    "backend",
)
_BACKEND_KEYS = ("kind", "address", "cpus_per_trial", "gpus_per_trial", "max_concurrent")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_VARIANTS = ("baseline", "no_se", "no_skip", "neither")


@dataclass(frozen=True)
class BackendConfig:
    """Where runs execute: in this process (``local``) or as Ray tasks (``ray``)."""

    kind: str = "local"
    address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "cpus_per_trial": self.cpus_per_trial,
                             "gpus_per_trial": self.gpus_per_trial}
        if self.address is not None:
            d["address"] = self.address
        if self.max_concurrent is not None:
            d["max_concurrent"] = self.max_concurrent
        return d


@dataclass(frozen=True)
class AblationConfig:
    """A validated ablation: every variant already resolved to a valid :class:`Arch`."""

    name: str
    arch: str
    base: Arch
    variants: tuple[str, ...]
    archs: dict[str, Arch]
    baseline: str | None
    seeds: tuple[int, ...]
    data: ProxyConfig
    train: TrainConfig
    stem_stride: int | None
    storage: str
    macs_resolution: int
    macs_num_classes: int | None = None
    backend: BackendConfig = field(default_factory=BackendConfig)
    description: str = ""
    definitions: dict[str, VariantDef] = field(default_factory=dict)

    @property
    def out_dir(self) -> Path:
        """Folder for the table and figure: ``results/<name>/``."""
        return Path("results") / self.name

    def recipe(self) -> dict[str, Any]:
        """What must not change between a run and its resume (else stored runs are not comparable)."""
        return {
            "data": self.data.to_dict(),
            "train": {k: v for k, v in self.train.to_dict().items() if k not in ("seed", "device")},
            "stem_stride": self.stem_stride,
            "macs_resolution": self.macs_resolution,
            "macs_num_classes": self.macs_num_classes,
        }

    def to_dict(self) -> dict[str, Any]:
        """The validated file, normalised (stored in the run database)."""
        d: dict[str, Any] = {
            "name": self.name,
            "arch": self.arch,
            "variants": list(self.variants),
            "seeds": list(self.seeds),
            "storage": self.storage,
            "macs_resolution": self.macs_resolution,
            "data": self.data.to_dict(),
            "train": self.train.to_dict(),
            "backend": self.backend.to_dict(),
        }
        if self.baseline is not None:
            d["baseline"] = self.baseline
        if self.description:
            d["description"] = self.description
        if self.stem_stride is not None:
            d["stem_stride"] = self.stem_stride
        if self.macs_num_classes is not None:
            d["macs_num_classes"] = self.macs_num_classes
        if self.definitions:
            d["variant"] = {k: v.to_dict() for k, v in self.definitions.items()}
        return d

    def with_seeds(self, n: int) -> AblationConfig:
        """Override the seeds with ``0..n-1`` (the CLI's ``--seeds N``)."""
        return replace(self, seeds=_parse_seeds(n, "--seeds"))

    def with_backend(self, kind: str) -> AblationConfig:
        """Override the backend kind (the CLI's ``--backend``)."""
        return replace(self, backend=replace(self.backend, kind=_check_backend_kind(kind, "--backend")))


def _type_name(v: object) -> str:
    return type(v).__name__


def _check_unknown(d: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for k in d:
        if k not in allowed:
            path = f"{where}.{k}" if where else k
            raise ConfigError(f"{path}: unknown key; allowed: {', '.join(allowed)}")


def _get_str(d: dict[str, Any], key: str, default: str | None, where: str = "") -> str | None:
    if key not in d:
        return default
    v = d[key]
    if not isinstance(v, str):
        raise ConfigError(f"{where}{key}: expected a string, got {_type_name(v)} {v!r}")
    return v


def _get_int(d: dict[str, Any], key: str, default: int | None, where: str = "", lo: int = 1) -> int | None:
    if key not in d:
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"{where}{key}: expected an integer >= {lo}, got {v!r}")
    return v


def _get_float(d: dict[str, Any], key: str, default: float, where: str = "") -> float:
    if key not in d:
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ConfigError(f"{where}{key}: expected a number >= 0, got {v!r}")
    return float(v)


def _parse_seeds(v: object, where: str = "seeds") -> tuple[int, ...]:
    if isinstance(v, bool):
        raise ConfigError(f"{where}: expected a positive count or a non-empty list of integers, got {v!r}")
    if isinstance(v, int):
        if v < 1:
            raise ConfigError(f"{where}: at least one seed is needed, got {v}")
        return tuple(range(v))
    if isinstance(v, list):
        if not v:
            raise ConfigError(f"{where}: at least one seed is needed, got an empty list")
        for i, s in enumerate(v):
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ConfigError(f"{where}[{i}]: expected an integer >= 0, got {s!r}")
        if len(set(v)) != len(v):
            raise ConfigError(f"{where}: seeds must be distinct, got {v}")
        return tuple(v)
    raise ConfigError(f"{where}: expected a positive count or a non-empty list of integers, got {v!r}")


def _check_backend_kind(kind: object, where: str) -> str:
    if kind not in ("local", "ray"):
        raise ConfigError(f"{where}: expected 'local' or 'ray', got {kind!r}")
    return str(kind)


def _parse_backend(d: object) -> BackendConfig:
    if not isinstance(d, dict):
        raise ConfigError(f"backend: expected a table, got {_type_name(d)}")
    _check_unknown(d, _BACKEND_KEYS, "backend")
    kind = _check_backend_kind(d.get("kind", "local"), "backend.kind")
    return BackendConfig(
        kind=kind,
        address=_get_str(d, "address", None, "backend."),
        cpus_per_trial=_get_float(d, "cpus_per_trial", 1.0, "backend."),
        gpus_per_trial=_get_float(d, "gpus_per_trial", 0.0, "backend."),
        max_concurrent=_get_int(d, "max_concurrent", None, "backend."),
    )


def parse_ablation(raw: dict[str, Any]) -> AblationConfig:
    """Validate an already-decoded ablation file (see the module docstring for the schema)."""
    from nas_harness.arch import resolve_arch
    from nas_harness.data import ProxyConfig
    from nas_harness.train import TrainConfig

    if not isinstance(raw, dict):
        raise ConfigError("ablation file: expected a TOML table at top level")
    _check_unknown(raw, _TOP_KEYS, "")
    name = _get_str(raw, "name", None)
    if name is None:
        raise ConfigError("name: required (used as results/<name>/)")
    if not _NAME_RE.match(name):
        raise ConfigError(f"name: expected letters, digits, '_', '.', '-' (no path separators), got {name!r}")
    arch_text = _get_str(raw, "arch", "b0") or "b0"
    try:
        base = resolve_arch(arch_text)
    except ValueError as exc:
        raise ConfigError(f"arch: {' '.join(str(exc).split())}") from exc

    defs_raw = raw.get("variant", {})
    if not isinstance(defs_raw, dict):
        raise ConfigError(f"variant: expected tables [variant.<name>], got {_type_name(defs_raw)}")
    definitions: dict[str, VariantDef] = {}
    for vname, vdef in defs_raw.items():
        if vname in BUILTIN_VARIANTS:
            raise ConfigError(f"variant.{vname}: name clashes with a built-in variant; pick another name")
        definitions[vname] = parse_variant_def(vname, vdef, where=f"variant.{vname}")

    variants_raw = raw.get("variants", list(DEFAULT_VARIANTS))
    if not isinstance(variants_raw, list) or not variants_raw:
        raise ConfigError(f"variants: expected a non-empty list of variant names, got {variants_raw!r}")
    for i, v in enumerate(variants_raw):
        if not isinstance(v, str):
            raise ConfigError(f"variants[{i}]: expected a variant name (string), got {v!r}")
    if len(set(variants_raw)) != len(variants_raw):
        raise ConfigError(f"variants: names must be distinct, got {variants_raw}")
    variants = tuple(variants_raw)
    archs = resolve_variants(base, variants, definitions, where="variants")

    baseline = _get_str(raw, "baseline", "baseline" if "baseline" in variants else None)
    if baseline is not None and baseline not in variants:
        raise ConfigError(f"baseline: {baseline!r} is not among variants {list(variants)}")

    seeds = _parse_seeds(raw.get("seeds", 3))
    stem_stride = _get_int(raw, "stem_stride", None)
    if stem_stride not in (None, 1, 2):
        raise ConfigError(f"stem_stride: expected 1 or 2 (omit it to use the arch's own), got {stem_stride}")

    data_raw = raw.get("data", {})
    train_raw = raw.get("train", {})
    for key, val in (("data", data_raw), ("train", train_raw)):
        if not isinstance(val, dict):
            raise ConfigError(f"{key}: expected a table [{key}], got {_type_name(val)}")
    data = ProxyConfig.from_dict(data_raw, where="data")
    train = TrainConfig.from_dict(train_raw, where="train")
    macs_resolution = _get_int(raw, "macs_resolution", 224) or 224
    macs_num_classes = _get_int(raw, "macs_num_classes", None)
    backend = _parse_backend(raw.get("backend", {}))
    storage = _get_str(raw, "storage", str(Path("results") / name / "ablation.db"))
    assert storage is not None
    if not storage.strip():
        raise ConfigError("storage: expected a file path, got an empty string")
    return AblationConfig(
        name=name,
        arch=arch_text,
        base=base,
        variants=variants,
        archs=archs,
        baseline=baseline,
        seeds=seeds,
        data=data,
        train=train,
        stem_stride=stem_stride,
        storage=storage,
        macs_resolution=macs_resolution,
        macs_num_classes=macs_num_classes,
        backend=backend,
        description=_get_str(raw, "description", "") or "",
        definitions=definitions,
    )


def load_ablation(path: str | Path) -> AblationConfig:
    """Read and validate an ablation TOML file; ConfigError (one line) on any problem."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"ablation file: {p} does not exist")
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"ablation file {p}: invalid TOML: {' '.join(str(exc).split())}") from exc
    return parse_ablation(raw)
