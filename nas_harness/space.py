"""The searchable MBConv space: per-stage choices around a fixed base arch.

What is searched, per stage: kernel size, expansion ratio, SE on/off, repeats and (optionally) a width
multiplier on the stage's channels.  What is fixed comes from the base arch: the number of stages, their
strides, the stem, the head, dropout, stochastic depth and activation.  EfficientNet-B0 is a member of the
default space, so a search can always be seeded with it.

Optuna parameter names are stable (``s3_kernel``, ``s3_expand``, ``s3_se``, ``s3_repeats``, ``s3_width``;
stages are numbered from 1), so studies stay comparable across code versions and a study can be resumed.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from nas_harness._config import Bool, ConfigModel, Int, Num
from nas_harness.arch import Arch, Stage, make_divisible
from nas_harness.errors import ConfigError
from nas_harness.presets import efficientnet_b0

DEFAULT_KERNELS = (3, 5, 7)
DEFAULT_EXPANDS = (1, 3, 4, 6)
DEFAULT_SE = (True, False)
DEFAULT_REPEATS_DELTA = 1
DEFAULT_WIDTHS = (1.0,)

_FIELDS = ("kernel", "expand", "se", "repeats", "width")


#: Bounds of the per-stage choices (every number in a study file is finite and inside a stated range).
MAX_CHOICES = 64
MAX_KERNEL = 31
MAX_EXPAND = 32
MAX_REPEATS = 64
MAX_WIDTH = 8.0
MAX_REPEATS_DELTA = 16


def _short(v: Any, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tuple(where: str, values: Any, check, what: str) -> tuple:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ConfigError(f"{where}: expected a list of {what}, got {_short(values)}")
    out = tuple(values)
    if not out:
        raise ConfigError(f"{where}: expected a non-empty list of {what}")
    if len(out) > MAX_CHOICES:
        raise ConfigError(f"{where}: {len(out)} choices; at most {MAX_CHOICES}")
    for v in out:
        if not check(v):
            raise ConfigError(f"{where}: expected a list of {what}, got element {_short(v)}")
    if len(set(out)) != len(out):
        raise ConfigError(f"{where}: duplicate choices in {_short(list(out))}")
    return out


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class StageChoices:
    """The choices for one stage; each tuple is a categorical of its own."""

    kernels: tuple[int, ...] = DEFAULT_KERNELS
    expands: tuple[float, ...] = DEFAULT_EXPANDS
    se: tuple[bool, ...] = DEFAULT_SE
    repeats: tuple[int, ...] = (1,)
    widths: tuple[float, ...] = DEFAULT_WIDTHS

    def validate(self, where: str) -> StageChoices:
        """Return a normalised copy, or raise ConfigError naming ``where`` and what is allowed."""
        kernels = _tuple(f"{where}.kernels", self.kernels,
                         lambda v: _is_int(v) and 1 <= v <= MAX_KERNEL and v % 2 == 1,
                         f"odd kernel sizes in [1, {MAX_KERNEL}] (e.g. 3, 5, 7)")
        expands = _tuple(f"{where}.expands", self.expands, lambda v: _is_num(v) and 1 <= v <= MAX_EXPAND,
                         f"expansion ratios in [1, {MAX_EXPAND}]")
        se = _tuple(f"{where}.se", self.se, lambda v: isinstance(v, bool), "booleans (true = SE on)")
        repeats = _tuple(f"{where}.repeats", self.repeats, lambda v: _is_int(v) and 1 <= v <= MAX_REPEATS,
                         f"integers in [1, {MAX_REPEATS}]")
        widths = _tuple(f"{where}.widths", self.widths, lambda v: _is_num(v) and 0 < v <= MAX_WIDTH,
                        f"width multipliers in (0, {MAX_WIDTH:g}]")
        return StageChoices(kernels, expands, se, repeats, widths)

    @property
    def size(self) -> int:
        return len(self.kernels) * len(self.expands) * len(self.se) * len(self.repeats) * len(self.widths)


class StageKeys(ConfigModel):
    """One stage's overrides in ``[space.stages.N]`` (documents the keys; :meth:`SearchSpace.from_dict`
    validates them)."""

    kernels: Annotated[list[Int] | None, Field(description="this stage's kernel sizes")] = None
    expands: Annotated[list[Num] | None, Field(description="this stage's expansion ratios")] = None
    se: Annotated[list[Bool] | None, Field(description="this stage's SE choices")] = None
    repeats: Annotated[list[Int] | None, Field(description=f"this stage's repeat counts, 1..{MAX_REPEATS} "
                                                           "(instead of base ± repeats_delta)")] = None
    widths: Annotated[list[Num] | None, Field(description="this stage's width multipliers")] = None


class SpaceKeys(ConfigModel):
    """The ``[space]`` table: per-stage choices around the base arch.  This model names and documents the
    keys (docs/study-file.md, the JSON Schema); :meth:`SearchSpace.from_dict` accepts exactly these and
    checks every value."""

    kernels: Annotated[tuple[Int, ...], Field(
        description=f"depthwise kernel sizes every stage may use (odd, 1..{MAX_KERNEL})")] = DEFAULT_KERNELS
    expands: Annotated[tuple[Num, ...], Field(
        description=f"expansion ratios every stage may use (1..{MAX_EXPAND})")] = DEFAULT_EXPANDS
    se: Annotated[tuple[Bool, ...], Field(description="squeeze-and-excitation choices (true = on)")] = DEFAULT_SE
    widths: Annotated[tuple[Num, ...], Field(
        description=f"width multipliers of each stage's channels (0..{MAX_WIDTH:g})")] = DEFAULT_WIDTHS
    repeats_delta: Annotated[Int, Field(ge=0, le=MAX_REPEATS_DELTA, description="repeats = the base stage's ± this"
                                        )] = DEFAULT_REPEATS_DELTA
    se_ratio: Annotated[Num, Field(gt=0, le=1, description="SE squeeze ratio (relative to the block input) where SE "
                                   "is on; an error when no stage can have SE")] = 0.25
    stages: Annotated[dict[str, dict[str, list[Any]]], Field(
        description="overrides for single stages, keyed by stage number: [space.stages.2] kernels = [3], "
                    "expands, se, repeats, widths")] = Field(default_factory=dict)


class SearchSpace:
    """Per-stage choices around a base arch.  Immutable; compare with ``==``."""

    def __init__(self, base: Arch, stages: Sequence[StageChoices], se_ratio: float = 0.25) -> None:
        if len(stages) != len(base.stages):
            raise ConfigError(f"space.stages: expected {len(base.stages)} stages (as in the base arch), "
                              f"got {len(stages)}")
        if not _is_num(se_ratio) or not 0 < se_ratio <= 1:
            raise ConfigError(f"space.se_ratio: expected a number in (0, 1], got {se_ratio!r}")
        self.base = base
        self.stages = tuple(sc.validate(f"space.stages.{i}") for i, sc in enumerate(stages, start=1))
        self.se_ratio = float(se_ratio)

    # ------------------------------------------------------------------------------------ construction
    @classmethod
    def default(cls, base: Arch | None = None, repeats_delta: int = DEFAULT_REPEATS_DELTA,
                kernels: Sequence[int] = DEFAULT_KERNELS, expands: Sequence[float] = DEFAULT_EXPANDS,
                se: Sequence[bool] = DEFAULT_SE, widths: Sequence[float] = DEFAULT_WIDTHS,
                se_ratio: float = 0.25) -> SearchSpace:
        """Kernels {3,5,7}, expansions {1,3,4,6}, SE on/off and repeats base±1 in every stage of ``base``
        (B0 when omitted)."""
        base = efficientnet_b0() if base is None else base
        if not _is_int(repeats_delta) or not 0 <= repeats_delta <= MAX_REPEATS_DELTA:
            raise ConfigError(f"space.repeats_delta: expected an integer in [0, {MAX_REPEATS_DELTA}], got "
                              f"{_short(repeats_delta)}")
        stages = [StageChoices(tuple(kernels), tuple(expands), tuple(se),
                               tuple(range(max(1, st.repeats - repeats_delta), st.repeats + repeats_delta + 1)),
                               tuple(widths)) for st in base.stages]
        return cls(base, stages, se_ratio)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, base: Arch | None = None, where: str = "space") -> SearchSpace:
        """Build from a study file's ``[space]`` table.

        Keys (all optional): ``kernels``, ``expands``, ``se``, ``widths`` (defaults for every stage),
        ``repeats_delta`` (repeats = base ± delta), ``se_ratio``, and ``stages`` — a table keyed by stage
        number ("1".."7") overriding ``kernels``/``expands``/``se``/``repeats``/``widths`` for that stage.
        """
        d = dict(d or {})
        allowed = set(SpaceKeys.model_fields)
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key; allowed keys are {', '.join(sorted(allowed))}")
        common = StageChoices(kernels=_seq(d, "kernels", DEFAULT_KERNELS, where),
                              expands=_seq(d, "expands", DEFAULT_EXPANDS, where), se=_seq(d, "se", DEFAULT_SE, where),
                              widths=_seq(d, "widths", DEFAULT_WIDTHS, where)).validate(where)
        space = cls.default(base, repeats_delta=d.get("repeats_delta", DEFAULT_REPEATS_DELTA),
                            kernels=common.kernels, expands=common.expands, se=common.se, widths=common.widths,
                            se_ratio=d.get("se_ratio", 0.25))
        overrides = d.get("stages", {})
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"{where}.stages: expected a table keyed by stage number, got {overrides!r}")
        stages = list(space.stages)
        n = len(stages)
        for key, ov in overrides.items():
            if not str(key).isdecimal() or not 1 <= int(key) <= n:
                raise ConfigError(f"{where}.stages.{key}: expected a stage number 1..{n}")
            if not isinstance(ov, Mapping):
                raise ConfigError(f"{where}.stages.{key}: expected a table, got {ov!r}")
            bad = sorted(set(ov) - set(StageKeys.model_fields))
            if bad:
                raise ConfigError(f"{where}.stages.{key}.{bad[0]}: unknown key; allowed keys are "
                                  f"{', '.join(sorted(StageKeys.model_fields))}")
            i = int(key) - 1
            stages[i] = dataclasses.replace(stages[i], **{k: tuple(v) if isinstance(v, list) else v
                                                          for k, v in ov.items()})
            stages[i].validate(f"{where}.stages.{key}")
        if "se_ratio" in d and not any(True in sc.se for sc in stages):
            raise ConfigError(f"{where}.se_ratio: has no effect, no stage can have SE (se = [false] everywhere); "
                              "remove it or allow se = true")
        return cls(space.base, stages, space.se_ratio)

    def to_dict(self) -> dict[str, Any]:
        """Explicit per-stage form, accepted by :meth:`from_dict` (with the same base)."""
        return {"se_ratio": self.se_ratio,
                "stages": {str(i): {"kernels": list(sc.kernels), "expands": list(sc.expands), "se": list(sc.se),
                                    "repeats": list(sc.repeats), "widths": list(sc.widths)}
                           for i, sc in enumerate(self.stages, start=1)}}

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SearchSpace) and self.base == other.base and self.stages == other.stages
                and self.se_ratio == other.se_ratio)

    def __hash__(self) -> int:
        return hash((self.base, self.stages, self.se_ratio))

    def __repr__(self) -> str:
        return f"SearchSpace(size={self.size}, stages={len(self.stages)}, base={self.base})"

    # ------------------------------------------------------------------------------------ queries
    @property
    def size(self) -> int:
        """Number of distinct architectures (the product of every stage's choices)."""
        return math.prod(sc.size for sc in self.stages)

    def param_grid(self) -> dict[str, list[Any]]:
        """Every Optuna parameter with its choices (for ``optuna.samplers.GridSampler``)."""
        grid: dict[str, list[Any]] = {}
        for i, sc in enumerate(self.stages, start=1):
            grid[f"s{i}_kernel"] = list(sc.kernels)
            grid[f"s{i}_expand"] = list(sc.expands)
            grid[f"s{i}_se"] = list(sc.se)
            grid[f"s{i}_repeats"] = list(sc.repeats)
            grid[f"s{i}_width"] = list(sc.widths)
        return grid

    def arch_from_params(self, params: Mapping[str, Any]) -> Arch:
        """The arch for a full set of parameter values (as Optuna stores them)."""
        stages = []
        for i, (base_st, sc) in enumerate(zip(self.base.stages, self.stages), start=1):
            try:
                k, e, se, r, w = (params[f"s{i}_{f}"] for f in _FIELDS)
            except KeyError as exc:
                raise ConfigError(f"space params: missing {exc.args[0]}") from None
            for name, v, allowed in (("kernel", k, sc.kernels), ("expand", e, sc.expands), ("se", se, sc.se),
                                     ("repeats", r, sc.repeats), ("width", w, sc.widths)):
                if v not in allowed or (name == "se") != isinstance(v, bool):
                    raise ConfigError(f"s{i}_{name}: expected one of {list(allowed)}, got {v!r}")
            stages.append(Stage(repeats=r, kernel=k, stride=base_st.stride, expand=e,
                                channels=make_divisible(base_st.channels * w), se=self.se_ratio if se else None,
                                skip=base_st.skip))
        return dataclasses.replace(self.base, stages=tuple(stages))

    def suggest(self, trial) -> Arch:
        """Define-by-run: ask an Optuna trial for every stage's choices and return the arch."""
        params = {name: trial.suggest_categorical(name, choices) for name, choices in self.param_grid().items()}
        return self.arch_from_params(params)

    def sample(self, rng: random.Random | int | None = None) -> Arch:
        """A uniformly random member (each choice independent and uniform = uniform over the product)."""
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        return self.arch_from_params({name: rng.choice(choices) for name, choices in self.param_grid().items()})

    def params_of(self, arch: Arch) -> dict[str, Any]:
        """Inverse of :meth:`arch_from_params`: the parameter values that give ``arch`` (for
        ``study.enqueue_trial``).  Raises ConfigError saying which part of ``arch`` is outside the space."""
        reason = self._why_not_member(arch)
        if reason is not None:
            raise ConfigError(f"arch is not in the search space: {reason}")
        params: dict[str, Any] = {}
        for i, (base_st, sc, st) in enumerate(zip(self.base.stages, self.stages, arch.stages), start=1):
            width = next(w for w in sc.widths if make_divisible(base_st.channels * w) == st.channels)
            params.update({f"s{i}_kernel": st.kernel, f"s{i}_expand": st.expand, f"s{i}_se": st.se is not None,
                           f"s{i}_repeats": st.repeats, f"s{i}_width": width})
        return params

    choices_of = params_of

    def __contains__(self, arch: object) -> bool:
        return isinstance(arch, Arch) and self._why_not_member(arch) is None

    def _why_not_member(self, arch: Arch) -> str | None:
        b = self.base
        for name in ("stem_channels", "stem_stride", "head_channels", "dropout", "drop_path", "act"):
            if getattr(arch, name) != getattr(b, name):
                return f"{name} is {getattr(arch, name)!r}, the space fixes it to {getattr(b, name)!r}"
        if len(arch.stages) != len(b.stages):
            return f"{len(arch.stages)} stages, the space has {len(b.stages)}"
        for i, (base_st, sc, st) in enumerate(zip(b.stages, self.stages, arch.stages), start=1):
            if st.stride != base_st.stride or st.skip != base_st.skip:
                return f"stage {i} stride/skip differ from the base"
            if st.kernel not in sc.kernels:
                return f"stage {i} kernel {st.kernel} not in {list(sc.kernels)}"
            if st.expand not in sc.expands:
                return f"stage {i} expand {st.expand} not in {list(sc.expands)}"
            if (st.se is not None) not in sc.se or (st.se is not None and st.se != self.se_ratio):
                return f"stage {i} se {st.se} not allowed (choices {list(sc.se)}, ratio {self.se_ratio})"
            if st.repeats not in sc.repeats:
                return f"stage {i} repeats {st.repeats} not in {list(sc.repeats)}"
            if all(make_divisible(base_st.channels * w) != st.channels for w in sc.widths):
                return f"stage {i} channels {st.channels} not reachable with widths {list(sc.widths)}"
        return None


def _seq(d: Mapping[str, Any], key: str, default: Sequence[Any], where: str) -> tuple:
    v = d.get(key, default)
    if not isinstance(v, (list, tuple)):
        raise ConfigError(f"{where}.{key}: expected a list, got {v!r}")
    return tuple(v)
