"""The scaling-curves file (TOML): the EfficientNet paper's width / depth / resolution study on a proxy.

Tan & Le 2019 (EfficientNet, §3.2-3.3) scale a baseline by one dimension at a time and plot accuracy against
FLOPs (their Figure 3), scale width at several fixed (depth, resolution) pairs (Figure 4) and compare compound
scaling with single-dimension scaling at equal FLOPs (Figure 8).  A file names the base, the proxy data and
recipe (the same ``[data]``/``[train]``/``[trial]``/``[run]``/``[ray]`` tables as a study or ablation file)
and the curves::

    name = "scaling_curves_b0"          # results go to <run.results_dir>/<name>/
    base = "b0"                         # b0..b7, an arch string or a file
    base_width = 0.25                   # optional: the base is scale_arch(base, base_width, base_depth)
    base_depth = 0.34
    seeds = 3                           # a count (0..N-1) or a list; every variant runs every seed (paired)

    [curves]
    width = [1.0, 1.4, 1.8, 2.2, 2.6]   # width-only multipliers (increasing, each in [1, 4], at least 2;
                                        # leave a key out for no such curve, at least one curve)
    depth = [1.0, 2.0, 3.0, 4.0]        # depth-only multipliers
    resolution = [1.0, 1.25, 1.5, 1.75] # resolution-only multipliers of data.resolution (and of the
                                        # [trial] macs_resolution for the deployed MACs)
    width_at = [[2.0, 1.0], [1.0, 1.5]] # Figure 4: the width list again at each (depth, resolution)
    compound_phi = [0, 1, 2, 3]         # compound scaling: depth alpha^phi, width beta^phi, resolution gamma^phi
    alpha = 1.2                         # defaults: the paper's 1.2 / 1.1 / 1.15 ...
    beta = 1.1
    gamma = 1.15
    # from_study = "studies/x.toml"     # ... or (instead) the best triple of that study's `search --scaling`
    macs = "deployed"                   # x axis: "deployed" (macs_resolution px x multiplier, macs_num_classes
                                        # classes, 3-channel input, the arch's own stem) or "proxy" (the
                                        # trained network at its own resolution, classes, channels and stem)

Every variant is :func:`nas_harness.scaling.compound` of the base: a width-only point w is
``compound(base, 1, alpha=1, beta=w, gamma=1)``, a depth-only point ``alpha=d``, a resolution-only point
``gamma=r``, a Figure-4 point ``(d, w, r)`` and a compound point ``compound(base, phi, alpha, beta, gamma)``:
so each variant's arch and MACs are what ``nas-harness scale ARCH --phi 1 --alpha d --beta w --gamma r``
prints.  The training resolution is ``round(data.resolution x r)`` (images resized, never padded: a variant's
resolution must be one the data can give) and the deployed MACs are counted at ``round(macs_resolution x r)``,
the rule of ``search --scaling``.

Everything is validated before anything is trained; each problem is a one-line
:class:`~nas_harness.errors.ConfigError` naming its key path (``curves.width[2]``, ``curves.from_study``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from nas_harness._config import (
    NAME_RULE,
    ConfigModel,
    Int,
    Name,
    Num,
    Rules,
    Text,
    allowed,
    bad,
    inert,
    json_schema,
    read_toml,
    restate,
)
from nas_harness.backends.settings import RayConfig, RunSettings
from nas_harness.data.proxy import ProxyConfig
from nas_harness.errors import ConfigError
from nas_harness.scaling import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA
from nas_harness.train.config import TrainConfig
from nas_harness.trial import TrialSettings

if TYPE_CHECKING:
    from nas_harness.arch import Arch

__all__ = ["CurvePoint", "CurvesConfig", "CurvesTrial", "ScalingCurvesConfig", "load_scaling_curves",
           "parse_scaling_curves"]

#: Range of a width / depth / resolution multiplier (and of alpha, beta, gamma): that of ``nas-harness scale``.
MULTIPLIER_RANGE = (1.0, 4.0)
PHI_RANGE = (0.0, 10.0)
#: Native image size of the built-in data sets (a resolution above it is an upsampling: no new detail).
NATIVE_PX = {"fashion_mnist": 28, "cifar10": 32, "cifar100": 32}
SINGLE = ("width", "depth", "resolution")
_SEED = Annotated[Int, Field(ge=0, le=2**32 - 1)]
_MULT = Annotated[Num, Field(ge=MULTIPLIER_RANGE[0], le=MULTIPLIER_RANGE[1])]
_PHI = Annotated[Num, Field(ge=PHI_RANGE[0], le=PHI_RANGE[1])]


def _increasing(v: Any, what: str, least: int) -> Any:
    if isinstance(v, list):
        if not v:
            raise bad("", f"an empty curve: give at least {least} {what} (or leave the key out)")
        if len(v) < least:
            raise bad("", f"a curve needs at least {least} {what}, got {v!r}"[:200])
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v) and any(
                not x < y for x, y in itertools.pairwise(v)):
            raise bad("", f"{what} must be increasing, got {v!r}"[:200])
        return tuple(v)
    return v


class CurvesConfig(ConfigModel):
    """``[curves]``: which variants to train (see the module docstring)."""

    width: Annotated[tuple[_MULT, ...], Field(max_length=64, description=(
        "width-only multipliers, increasing, each in [1, 4] (at least 2)"))] = ()
    depth: Annotated[tuple[_MULT, ...], Field(max_length=64, description=(
        "depth-only multipliers, increasing, each in [1, 4] (at least 2)"))] = ()
    resolution: Annotated[tuple[_MULT, ...], Field(max_length=64, description=(
        "resolution-only multipliers of data.resolution, increasing, each in [1, 4] (at least 2)"))
                          ] = ()
    width_at: Annotated[tuple[tuple[_MULT, _MULT], ...], Field(max_length=16, description=(
        "Figure 4: (depth, resolution) pairs at which the width list is run again"), json_schema_extra=allowed(
        "a list of [depth, resolution] pairs, each in [1, 4]"))] = ()
    compound_phi: Annotated[tuple[_PHI, ...], Field(max_length=64, description=(
        "compound coefficients phi, increasing, each in [0, 10]"))] = ()
    alpha: Annotated[_MULT | None, Field(description=f"depth base in [1, 4] (default {DEFAULT_ALPHA})")] = None
    beta: Annotated[_MULT | None, Field(description=f"width base in [1, 4] (default {DEFAULT_BETA})")] = None
    gamma: Annotated[_MULT | None, Field(description=f"resolution base in [1, 4] (default {DEFAULT_GAMMA})")] = None
    from_study: Annotated[Text | None, Field(min_length=1, max_length=4096, description=(
        "a study file whose `search --scaling` results give alpha, beta, gamma (its best triple)"))] = None
    macs: Annotated[Literal["deployed", "proxy"], Field(description=(
        "x axis: 'deployed' (macs_resolution px x r, macs_num_classes) or 'proxy' (the trained network)"))
                    ] = "deployed"

    @field_validator("width", "depth", "resolution", mode="before")
    @classmethod
    def _curve(cls, v: Any) -> Any:
        return _increasing(v, "multipliers", 2)

    @field_validator("compound_phi", mode="before")
    @classmethod
    def _phis(cls, v: Any) -> Any:
        return _increasing(v, "phi values", 1)

    @field_validator("width_at", mode="before")
    @classmethod
    def _pairs(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not v:
                raise bad("", "an empty panel: give at least one [depth, resolution] pair (or leave the key out)")
            for i, p in enumerate(v):
                if not (isinstance(p, list) and len(p) == 2):
                    raise bad("", f"entry {i} is {p!r}; each entry is a [depth, resolution] pair"[:200])
            if len(set(map(repr, v))) != len(v):
                raise bad("", f"(depth, resolution) pairs must be distinct, got {v!r}"[:200])
            return tuple(tuple(p) if isinstance(p, list) else p for p in v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> CurvesConfig:
        if self.from_study is not None:
            given = [k for k in ("alpha", "beta", "gamma") if getattr(self, k) is not None]
            if given:
                raise bad(given[0], "give alpha, beta, gamma or from_study, not both")
        if self.width_at and len(self.width) < 2:
            raise bad("width_at", "the Figure 4 panel runs the width list at each pair: give curves.width "
                                  "(at least 2 multipliers)")
        if not (self.width or self.depth or self.resolution or self.compound_phi):
            raise bad("", "no curve: give at least one of width, depth, resolution, compound_phi")
        return self


class CurvesTrial(TrialSettings):
    """``[trial]`` of a scaling-curves file: the deployed MACs are counted at ``macs_resolution`` x r px with
    ``macs_num_classes`` classes (default: the paper's 224 px, 1,000 classes); test accuracy is reported."""

    evaluate_test: Annotated[bool, Field(strict=True, description="report test accuracy (the curves' metric)")
                             ] = True
    cache: Annotated[bool, Field(strict=True, description="applies to search studies only (runs are stored "
                                                          "once each)")] = False

    _inert: ClassVar[Rules] = inert(cache=lambda t: True)


@dataclass(frozen=True)
class CurvePoint:
    """One point of one curve: its multipliers, the network (arch at a training resolution) and where its
    MACs are counted.  ``curve``: 'width', 'depth', 'resolution', 'width (d=2, r=1.3)' or 'compound'."""

    curve: str
    width: float
    depth: float
    res_mult: float
    phi: float | None
    arch: Arch
    resolution: int
    macs_resolution: int

    @property
    def label(self) -> str:
        if self.phi is not None:
            return f"phi={self.phi:g}"
        if self.curve == "depth":
            return f"d={self.depth:g}"
        if self.curve == "resolution":
            return f"r={self.res_mult:g}"
        return f"w={self.width:g}"

    @property
    def key(self) -> str:
        """The trained network (a job in the store): training px, deployed-count px and arch string."""
        return f"{self.resolution}px/{self.macs_resolution}px:{self.arch}"


class ScalingCurvesConfig(ConfigModel):
    """A validated scaling-curves file: every point resolved (:attr:`points`), every resolution checked."""

    name: Annotated[Name, Field(description=f"name and results folder: {NAME_RULE}")]
    description: Annotated[Text, Field(max_length=4000, description="free text")] = ""
    base: Annotated[Text, Field(min_length=1, max_length=10_000,
                                description="base arch: b0..b7, an arch string or a file holding one")] = "b0"
    base_width: Annotated[Num, Field(ge=0.05, le=8, description="width multiplier applied to base first")] = 1.0
    base_depth: Annotated[Num, Field(ge=0.05, le=8, description="depth multiplier applied to base first")] = 1.0
    seeds: Annotated[tuple[_SEED, ...], Field(min_length=1, max_length=10_000, description=(
        "a count N (seeds 0..N-1) or a list of distinct seeds; every variant runs every seed"),
        json_schema_extra=allowed("a count N >= 1 (seeds 0..N-1) or a non-empty list of distinct integers >= 0"))
                     ] = (0, 1, 2)
    curves: Annotated[CurvesConfig, Field(description="the [curves] table (required)")]
    data: ProxyConfig = ProxyConfig()
    train: TrainConfig = TrainConfig()
    trial: CurvesTrial = CurvesTrial()
    run: RunSettings = RunSettings()
    ray: RayConfig = RayConfig()

    _base_arch: Any = PrivateAttr(default=None)
    _coeffs: tuple[float, float, float] = PrivateAttr(default=(DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA))
    _coeff_source: str = PrivateAttr(default="the paper's defaults")
    _points: list[CurvePoint] = PrivateAttr(default_factory=list)

    @field_validator("seeds", mode="before")
    @classmethod
    def _count_or_list(cls, v: Any) -> Any:
        from nas_harness._config import distinct

        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise bad("", f"at least one seed is needed, got {v}")
            if v > 10_000:
                raise bad("", f"at most 10000 seeds, got {v}")
            return tuple(range(v))
        if isinstance(v, list) and not v:
            raise bad("", "at least one seed is needed, got an empty list")
        return distinct(v, "seeds")

    @model_validator(mode="after")
    def _resolve(self) -> ScalingCurvesConfig:
        from nas_harness.presets import resolve_arch
        from nas_harness.scaling import scale_arch

        if self.data.fit == "pad":
            raise bad("data.fit", "'pad' cannot scale the resolution (a border adds no detail); use 'resize' or "
                                  "'auto' (the variants are always resized)")
        try:
            base = scale_arch(resolve_arch(self.base), self.base_width, self.base_depth)
        except (ValueError, OSError) as exc:
            raise bad("base", " ".join(str(exc).split())) from None
        object.__setattr__(self, "_base_arch", base)
        c = self.curves
        if c.from_study is not None:
            try:
                a, b, g, source = _coefficients_from_study(c.from_study)
            except ConfigError as exc:
                raise restate(ConfigError(f"curves.from_study: {exc}")) from None
        else:
            a = c.alpha if c.alpha is not None else DEFAULT_ALPHA
            b = c.beta if c.beta is not None else DEFAULT_BETA
            g = c.gamma if c.gamma is not None else DEFAULT_GAMMA
            source = ("the paper's defaults" if (c.alpha, c.beta, c.gamma) == (None, None, None)
                      else "the file's [curves] alpha, beta, gamma")
        object.__setattr__(self, "_coeffs", (a, b, g))
        object.__setattr__(self, "_coeff_source", source)
        self._points.clear()
        self._points.extend(self._make_points())
        return self

    def _make_points(self) -> list[CurvePoint]:
        c = self.curves
        a, b, g = self._coeffs
        points: list[CurvePoint] = []
        for i, w in enumerate(c.width):
            points.append(self._point("width", f"curves.width[{i}]", 1.0, 1.0, w, 1.0))
        for i, d in enumerate(c.depth):
            points.append(self._point("depth", f"curves.depth[{i}]", 1.0, d, 1.0, 1.0))
        for i, r in enumerate(c.resolution):
            points.append(self._point("resolution", f"curves.resolution[{i}]", 1.0, 1.0, 1.0, r))
        for j, (d, r) in enumerate(c.width_at):
            for w in c.width:
                points.append(self._point(f"width (d={d:g}, r={r:g})", f"curves.width_at[{j}]", 1.0, d, w, r))
        for i, phi in enumerate(c.compound_phi):
            points.append(self._point("compound", f"curves.compound_phi[{i}]", phi, a, b, g, compound=True))
        return points

    def _point(self, curve: str, where: str, phi: float, d: float, w: float, r: float,
               compound: bool = False) -> CurvePoint:
        from nas_harness.scaling import compound as scale

        res = int(round(self.data.resolution * r ** phi))
        lo, hi = 8, 1024  # what ProxyConfig.resolution accepts
        if not lo <= res <= hi:
            raise bad(where, f"{r ** phi:g} x data.resolution {self.data.resolution} = {res} px; the data can "
                             f"give {lo}-{hi} px")
        macs_res = int(round(self.trial.macs_resolution * r ** phi))
        if macs_res > 4096:
            raise bad(where, f"{r ** phi:g} x trial.macs_resolution {self.trial.macs_resolution} = {macs_res} px; "
                             "MACs are counted at 8-4096 px")
        try:
            sa = scale(self._base_arch, phi, d, w, r, base_resolution=self.data.resolution)
        except ConfigError as exc:
            raise bad(where, str(exc)) from None
        return CurvePoint(curve, sa.width, sa.depth, r ** phi, phi if compound else None, sa.arch, sa.resolution,
                          macs_res)

    # --- derived values -------------------------------------------------------------------------------
    @property
    def base_arch(self) -> Arch:
        return self._base_arch

    @property
    def coefficients(self) -> tuple[float, float, float]:
        """(alpha, beta, gamma) of the compound curve."""
        return self._coeffs

    @property
    def coefficient_source(self) -> str:
        return self._coeff_source

    @property
    def points(self) -> list[CurvePoint]:
        """Every point of every curve, curve by curve, in increasing multiplier order."""
        return list(self._points)

    def curve_names(self) -> list[str]:
        return list(dict.fromkeys(p.curve for p in self._points))

    def networks(self) -> dict[str, CurvePoint]:
        """Distinct trained networks (key -> first point giving it): a network on several curves (the base is
        on every single-dimension curve) is trained once per seed."""
        out: dict[str, CurvePoint] = {}
        for p in self._points:
            out.setdefault(p.key, p)
        return out

    @property
    def out_dir(self) -> Path:
        return Path(self.run.results_dir) / self.name

    @property
    def storage_url(self) -> str:
        return self.run.storage or f"sqlite:///{self.out_dir / 'curves.db'}"

    def recipe(self) -> dict[str, Any]:
        """What must not change between a run and its resume (else stored runs are not comparable)."""
        return {
            "data": self.data.comparable(),
            "train": self.train.comparable(seed=False),
            "trial": self.trial.comparable(),
        }

    def replace_train(self, train: TrainConfig) -> ScalingCurvesConfig:
        """The same file with another (already validated) training recipe."""
        return self.model_copy(update={"train": train})

    def with_seeds(self, n: int) -> ScalingCurvesConfig:
        return self._with(seeds=n, where="--seeds")

    def with_backend(self, kind: str) -> ScalingCurvesConfig:
        return self._with(run={**self.run.model_dump(exclude_unset=True), "backend": kind}, where="--backend")

    def with_storage(self, url: str) -> ScalingCurvesConfig:
        return self._with(run={**self.run.model_dump(exclude_unset=True), "storage": url}, where="--storage")

    def _with(self, where: str, **changes: Any) -> ScalingCurvesConfig:
        d = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        d.update(changes)
        try:
            return ScalingCurvesConfig.from_dict(d)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _coefficients_from_study(path: str) -> tuple[float, float, float, str]:
    """(alpha, beta, gamma, source) of the best group of a study's ``search --scaling`` results."""
    import optuna

    from nas_harness.records import open_storage, redact
    from nas_harness.records._storage import sqlite_path
    from nas_harness.results.scaling import scaling_groups, scaling_rows
    from nas_harness.study.config import load_study

    cfg = load_study(path)
    name = f"{cfg.name}-scaling"
    db = sqlite_path(cfg.storage_url)
    if db is not None and not db.is_file():
        raise ConfigError(f"{path}: its storage {redact(cfg.storage_url)} does not exist; run "
                          f"`nas-harness search {path} --scaling` first")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(cfg.storage_url))
    except KeyError:
        raise ConfigError(f"{path}: no `search --scaling` results ({name!r}) in {redact(cfg.storage_url)}; run "
                          f"`nas-harness search {path} --scaling` first") from None
    groups = scaling_groups(scaling_rows(study))
    if not groups:
        raise ConfigError(f"{path}: its scaling search {name!r} has no completed triple yet")
    best = groups[0]
    a, b, g = best.members[0]
    tied = sum(1 for x in groups if x.tied_with_best) - 1
    source = (f"the best triple of `search --scaling` study {name!r} (val acc {100 * best.val_acc:.2f} % "
              f"[{100 * best.ci_low:.2f}, {100 * best.ci_high:.2f}] Wilson 95%; {tied} other network(s) tied within "
              "noise)")
    if not all(math.isfinite(x) and MULTIPLIER_RANGE[0] <= x <= MULTIPLIER_RANGE[1] for x in (a, b, g)):
        raise ConfigError(f"{path}: its best triple ({a:g}, {b:g}, {g:g}) is outside [1, 4]")
    return a, b, g, source


def parse_scaling_curves(raw: Any) -> ScalingCurvesConfig:
    """Validate an already-decoded scaling-curves file (see the module docstring for the schema)."""
    return ScalingCurvesConfig.from_dict(raw, "")


def load_scaling_curves(path: str | Path) -> ScalingCurvesConfig:
    """Read and validate a scaling-curves TOML file; ConfigError (one line) on any problem."""
    return parse_scaling_curves(read_toml(path, "scaling-curves file"))


def scaling_curves_sections() -> dict[str, type[ConfigModel]]:
    """Section -> model of a scaling-curves file (for the key table)."""
    return {"": ScalingCurvesConfig, "curves": CurvesConfig, "data": ProxyConfig, "train": TrainConfig,
            "trial": CurvesTrial, "run": RunSettings, "ray": RayConfig}


def scaling_curves_json_schema() -> dict[str, Any]:
    return json_schema(ScalingCurvesConfig, "nas-harness scaling-curves file")
