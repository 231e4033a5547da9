"""Ablation variants: named transformations of a base :class:`~nas_harness.arch.Arch`.

A variant is *data*, not code: the result of applying it is an ordinary arch (recorded as its string), so
a variant's run is exactly reproducible by training that string.  Built-ins:

=================  =============================================================================
``baseline``       the base arch unchanged
``no_se``          no squeeze-and-excitation in any block
``no_skip``        no residual skip in any block (``_noskip`` on every stage)
``neither``        no SE and no skip
``no_drop_path``   stochastic depth off (``dp0``)
``relu``           ReLU instead of the base activation (SiLU for B0)
``se_stages``      SE only in the second half of the stages (for B0: stages 4-7); ``se_stages:5-7`` or
                   ``se_stages:2,4`` pick the stages (1-based)
=================  =============================================================================

User-defined variants live in the ablation file as ``[variant.<name>]`` tables::

    [variant.k5_s3]
    description = "5x5 kernels and expansion 4 in stage 3"
    from = "baseline"                                # optional: start from another variant
    overrides = [{stage = 3, override = "k5_e4"}]     # stage options in the arch grammar
    se_stages = [5, 6, 7]                            # optional
    act = "relu"                                     # optional
    drop_path = 0.0                                  # optional

    [variant.searched]
    arch = "stem_c32_s2,ds_r1_k3_s1_e1_c16,...,head_c1280_do0.2_dp0.2_silu"   # a whole arch string

An override is a ``_``-separated list of stage options of the arch grammar (``r2``, ``k5``, ``s1``, ``e4``,
``c48``, ``se0.5``, ``noskip``) plus two switches only meaningful as overrides, ``nose`` (drop SE) and
``skip`` (restore the skip); or a whole stage token such as ``ir_r2_k5_s2_e6_c40_se0.25``.  ``stage`` is a
1-based index or a list of them.  Any variant that yields an invalid arch is a one-line ConfigError.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from nas_harness._config import ConfigModel, Int, Num, Text, bad
from nas_harness.arch import Arch, Stage, parse_arch
from nas_harness.errors import ConfigError

__all__ = [
    "BUILTIN_VARIANTS",
    "Override",
    "OverrideDef",
    "VariantDef",
    "apply_override",
    "apply_variant",
    "describe",
    "parse_variant_def",
    "resolve_variants",
    "se_only_in",
]

_DEFAULT_SE = 0.25


def se_only_in(arch: Arch, stages: Sequence[int]) -> Arch:
    """SE only in the given 1-based stages (keeping the base ratio where it had one, else 0.25)."""
    n = len(arch.stages)
    bad = [s for s in stages if not 1 <= s <= n]
    if bad:
        raise ConfigError(f"se_stages: stage {bad[0]} out of range; expected 1..{n}")
    keep = set(stages)
    new = tuple(
        dataclasses.replace(st, se=(st.se if st.se is not None else _DEFAULT_SE) if i in keep else None)
        for i, st in enumerate(arch.stages, start=1)
    )
    return arch.replace(stages=new)


def _second_half(arch: Arch) -> list[int]:
    n = len(arch.stages)
    return list(range(n // 2 + 1, n + 1))


BUILTIN_VARIANTS: dict[str, tuple[str, Callable[[Arch], Arch]]] = {
    "baseline": ("base arch unchanged", lambda a: a),
    "no_se": ("no squeeze-and-excitation anywhere", lambda a: a.replace_stages(se=None)),
    "no_skip": ("no residual skips anywhere", lambda a: a.replace_stages(skip=False)),
    "neither": ("no SE and no residual skips", lambda a: a.replace_stages(se=None, skip=False)),
    "no_drop_path": ("stochastic depth off", lambda a: a.replace(drop_path=0.0)),
    "relu": ("ReLU instead of the base activation", lambda a: a.replace(act="relu")),
    "se_stages": ("SE only in the second half of the stages", lambda a: se_only_in(a, _second_half(a))),
}


def _parse_stage_list(text: str, where: str) -> list[int]:
    """``"5-7"`` → [5, 6, 7]; ``"2,4"`` → [2, 4]."""
    out: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise ConfigError(f"{where}: expected stages like '5-7' or '2,4', got {text!r}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo:
            raise ConfigError(f"{where}: empty stage range {part.strip()!r}")
        out.extend(range(lo, hi + 1))
    return out


# --------------------------------------------------------------------------- per-stage overrides

_OPT_RE = re.compile(r"(se|r|k|s|e|c)(\d+(?:\.\d+)?)")
_FIELD = {"r": "repeats", "k": "kernel", "s": "stride", "e": "expand", "c": "channels", "se": "se"}


@dataclass(frozen=True)
class Override:
    """Stage options (arch grammar) applied to some 1-based stages."""

    stages: tuple[int, ...]
    text: str

    def to_dict(self) -> dict[str, Any]:
        st: Any = self.stages[0] if len(self.stages) == 1 else list(self.stages)
        return {"stage": st, "override": self.text}


def _override_fields(text: str, where: str) -> dict[str, Any] | Stage:
    """Parse an override into the Stage fields it sets, or a whole Stage for a full stage token."""
    text = text.strip()
    if text.startswith(("ds_", "ir_")):
        try:
            # Reuse the real parser (and its validation) via a throw-away one-stage arch.
            return parse_arch(f"stem_c8_s1,{text},head_c8_do0_dp0_silu").stages[0]
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    fields: dict[str, Any] = {}
    if not text:
        raise ConfigError(f"{where}: empty override; expected stage options like 'k5_e4'")
    for opt in text.split("_"):
        if opt in ("noskip", "skip"):
            key, val = "skip", opt == "skip"
        elif opt == "nose":
            key, val = "se", None
        else:
            m = _OPT_RE.fullmatch(opt)
            if not m:
                raise ConfigError(
                    f"{where}: bad stage option {opt!r} in {text!r}; expected r<int>, k<int>, s<int>, e<num>, "
                    "c<int>, se<num>, noskip, skip, nose, or a whole stage token like ir_r2_k5_s2_e6_c40"
                )
            key = _FIELD[m.group(1)]
            num = m.group(2)
            if key in ("expand", "se"):
                val = float(num)
            elif "." in num:
                raise ConfigError(f"{where}: option {m.group(1)} expects an integer, got {num}")
            else:
                val = int(num)
        if key in fields:
            raise ConfigError(f"{where}: {key} set twice in {text!r}")
        fields[key] = val
    return fields


def apply_override(arch: Arch, ov: Override, where: str = "override") -> Arch:
    """``arch`` with ``ov`` applied; ConfigError (naming ``where``) if the result is not a valid arch."""
    n = len(arch.stages)
    for s in ov.stages:
        if not 1 <= s <= n:
            raise ConfigError(f"{where}.stage: {s} out of range; the base arch has stages 1..{n}")
    change = _override_fields(ov.text, f"{where}.override")
    try:
        new = tuple(
            (change if isinstance(change, Stage) else dataclasses.replace(st, **change))
            if i in ov.stages else st
            for i, st in enumerate(arch.stages, start=1)
        )
        out = arch.replace(stages=new)
        return parse_arch(str(out))  # round trip: whatever the builder will see is parseable
    except ConfigError as exc:
        raise ConfigError(f"{where}: {ov.text!r} gives an invalid arch: {exc}") from None


# --------------------------------------------------------------------------- user-defined variants

VARIANT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$"
VARIANT_NAME_RULE = "1-64 letters, digits, '_', '.', '+', '-'"


def _stage_tuple(v: Any) -> Any:
    return (v,) if isinstance(v, int) and not isinstance(v, bool) else tuple(v) if isinstance(v, list) else v


class OverrideDef(ConfigModel):
    """``{stage = N, override = "k5_e4"}``: stage options (arch grammar) applied to 1-based stages."""

    stage: Annotated[tuple[Annotated[Int, Field(ge=1, le=1000)], ...], Field(
        min_length=1, max_length=1000, description="a 1-based stage index or a list of them")]
    override: Annotated[Text, Field(min_length=1, max_length=1000, description="stage options, e.g. 'k5_e4'")]

    @field_validator("stage", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return _stage_tuple(v)

    @field_validator("override")
    @classmethod
    def _syntax(cls, v: str) -> str:
        try:
            _override_fields(v, "override")  # syntax now, stage range when applied
        except ConfigError as exc:
            raise bad("", str(exc).removeprefix("override: ")) from None
        return v

    def to_override(self) -> Override:
        return Override(self.stage, self.override)


class VariantDef(ConfigModel):
    """A ``[variant.<name>]`` table, validated (but not yet applied to a base arch)."""

    model_config = ConfigModel.model_config | {"populate_by_name": True}

    description: Annotated[Text, Field(max_length=4000, description="one line for tables and figures")] = ""
    base: Annotated[Text | None, Field(alias="from", max_length=64, description="start from another variant")] = None
    arch: Annotated[Text | None, Field(max_length=10_000, description="a whole arch string (nothing else allowed)")
                    ] = None
    overrides: Annotated[tuple[OverrideDef, ...], Field(max_length=1000, description="per-stage overrides")] = ()
    se_stages: Annotated[tuple[Annotated[Int, Field(ge=1, le=1000)], ...] | None, Field(
        max_length=1000, description="SE only in these 1-based stages")] = None
    act: Annotated[Literal["silu", "relu", "hswish", "gelu"] | None, Field(description="activation")] = None
    drop_path: Annotated[Num | None, Field(ge=0, lt=1, description="stochastic-depth rate")] = None

    @field_validator("se_stages", mode="before")
    @classmethod
    def _stages(cls, v: Any) -> Any:
        return _stage_tuple(v)

    @model_validator(mode="after")
    def _something(self) -> VariantDef:
        edits = [k for k in ("base", "overrides", "se_stages", "act", "drop_path") if k in self.model_fields_set]
        if self.arch is not None and edits:
            raise bad("arch", "a whole arch string cannot be combined with from/overrides/se_stages/act/drop_path")
        if self.arch is None and not edits:
            raise bad("", "defines nothing; give arch, overrides, se_stages, act, drop_path or from")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def parse_variant_def(name: str, d: object, where: str | None = None) -> VariantDef:
    """Validate a ``[variant.<name>]`` table (types and keys only; applied later to the base arch)."""
    where = where or f"variant.{name}"
    if not re.fullmatch(VARIANT_NAME, name):
        raise ConfigError(f"{where}: variant names use {VARIANT_NAME_RULE}")
    return VariantDef.from_dict(d, where)


def _apply_def(base: Arch, vdef: VariantDef, start: Arch, where: str) -> Arch:
    if vdef.arch is not None:
        from nas_harness.presets import resolve_arch

        try:
            return resolve_arch(vdef.arch)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"{where}.arch: {exc}") from None
    arch = start
    for i, ov in enumerate(vdef.overrides):
        arch = apply_override(arch, ov.to_override(), f"{where}.overrides[{i}]")
    try:
        if vdef.se_stages is not None:
            arch = se_only_in(arch, vdef.se_stages)
        if vdef.act is not None:
            arch = arch.replace(act=vdef.act)
        if vdef.drop_path is not None:
            arch = arch.replace(drop_path=vdef.drop_path)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return arch


def apply_variant(
    base: Arch, name: str, definitions: Mapping[str, VariantDef] | None = None, where: str = "variants"
) -> Arch:
    """The arch of variant ``name`` (built-in, ``se_stages:<stages>``, or user-defined) on ``base``."""
    defs = dict(definitions or {})
    return _resolve(base, name, defs, where, ())


def _resolve(base: Arch, name: str, defs: dict[str, VariantDef], where: str, chain: tuple[str, ...]) -> Arch:
    if name in chain:
        raise ConfigError(f"variant.{chain[-1]}.from: cycle {' -> '.join([*chain, name])}")
    if name in defs:
        vdef = defs[name]
        start = _resolve(base, vdef.base, defs, f"variant.{name}.from", (*chain, name)) if vdef.base else base
        return _apply_def(base, vdef, start, f"variant.{name}")
    if name in BUILTIN_VARIANTS:
        try:
            return BUILTIN_VARIANTS[name][1](base)
        except ConfigError as exc:
            raise ConfigError(f"{where}: variant {name!r} does not apply to the base arch: {exc}") from None
    if name.startswith("se_stages:"):
        return se_only_in(base, _parse_stage_list(name.split(":", 1)[1], f"{where} ({name})"))
    known = ", ".join([*BUILTIN_VARIANTS, "se_stages:<a-b>", *defs])
    raise ConfigError(f"{where}: unknown variant {name!r}; known: {known} (or define [variant.{name}])")


def resolve_variants(
    base: Arch, names: Sequence[str], definitions: Mapping[str, VariantDef] | None = None,
    where: str = "variants",
) -> dict[str, Arch]:
    """Every named variant's arch, validated; raises on the first unknown name or invalid result."""
    defs = dict(definitions or {})
    return {n: _resolve(base, n, defs, f"{where}[{i}]", ()) for i, n in enumerate(names)}


def describe(name: str, definitions: Mapping[str, VariantDef] | None = None) -> str:
    """One-line human description of a variant (for tables and figures)."""
    defs = definitions or {}
    if name in defs:
        return defs[name].description or name
    if name in BUILTIN_VARIANTS:
        return BUILTIN_VARIANTS[name][0]
    if name.startswith("se_stages:"):
        return f"SE only in stages {name.split(':', 1)[1]}"
    return name
