"""Architectures as data: an immutable description of an MBConv network and its canonical string.

An :class:`Arch` is what the search space samples, what the builder builds, what the FLOP counter counts and
what every result row records.  Its string form follows timm's block-string convention so researchers
recognise it, extended with a stem and a head token so that one string describes the whole network.

Grammar (tokens separated by ``,``; options inside a token separated by ``_``)::

    arch   := stem "," block ("," block)* "," head
    stem   := "stem" "_c" INT "_s" INT
    block  := ("ds" | "ir") "_r" INT "_k" INT "_s" INT "_e" NUM "_c" INT ["_se" NUM] ["_noskip"]
    head   := "head" "_c" INT "_do" NUM "_dp" NUM "_" ACT ["_bneps" NUM] ["_bnmom" NUM]
    ACT    := "silu" | "relu" | "hswish" | "gelu"

Each ``block`` token is one *stage*: ``r`` repeats of the same MBConv block, the first with stride ``s``.
``ds`` (depthwise-separable) is the spelling of an ``e1`` block (no 1×1 expansion); ``ir`` (inverted
residual) is used for every other expansion ratio.  ``se`` is the squeeze ratio relative to the *block input*
channels (squeeze = max(1, int(in × se))); no ``se`` option means no SE.  ``noskip`` disables the residual add
(which otherwise applies when stride is 1 and in == out).  ``do`` is the classifier dropout, ``dp`` the
stochastic-depth rate, scaled linearly over the blocks.

``bneps`` and ``bnmom`` are the BatchNorm ``eps`` and ``momentum`` (PyTorch's convention: the weight of the
new batch in the running averages) of every BN layer.  They are written only when they differ from
PyTorch's defaults (1e-5 and 0.1), so every string without them keeps its meaning and its spelling;
torchvision's B5-B7 use ``_bneps0.001_bnmom0.01`` (the TF reference values), B0-B4 the defaults.  ``NUM``
may be written in exponent form (``1e-05``) as well.

The channel arithmetic that every consumer of an arch needs lives here too, so that neither the FLOP
counter nor the builder has to import the other: :func:`make_divisible` (the reference rounding of scaled
channel counts), :func:`expanded_channels` and :func:`se_squeeze_channels`.  Named presets (B0-B7) and
:func:`~nas_harness.presets.resolve_arch`, which reads files and user input, are in
:mod:`nas_harness.presets`; this module depends on nothing but :mod:`nas_harness.errors`.

EfficientNet-B0::

    stem_c32_s2,ds_r1_k3_s1_e1_c16_se0.25,ir_r2_k3_s2_e6_c24_se0.25,ir_r2_k5_s2_e6_c40_se0.25,
    ir_r3_k3_s2_e6_c80_se0.25,ir_r3_k5_s1_e6_c112_se0.25,ir_r4_k5_s2_e6_c192_se0.25,
    ir_r1_k3_s1_e6_c320_se0.25,head_c1280_do0.2_dp0.2_silu
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from nas_harness.errors import ConfigError

ACTIVATIONS = ("silu", "relu", "hswish", "gelu")
BLOCK_TYPES = ("ds", "ir")
BN_EPS, BN_MOMENTUM = 1e-5, 0.1  # PyTorch's BatchNorm defaults (and torchvision's B0-B4)


# ------------------------------------------------------------------------------------- channel arithmetic

def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without losing more than 10% (reference rule).

    TF ``round_filters`` / torchvision ``_make_divisible``: nearest multiple of 8, bumped up one step if
    that loses more than 10%.
    """
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


def expanded_channels(in_channels: int, expand: float) -> int:
    """Width of an MBConv's depthwise stage (torchvision rounds ``in × e`` to a multiple of 8)."""
    return make_divisible(in_channels * expand, 8)


def se_squeeze_channels(in_channels: int, ratio: float) -> int:
    """SE bottleneck width, relative to the *block input* channels as in the reference."""
    return max(1, int(in_channels * ratio))


def _fmt_num(x: float) -> str:
    """Shortest exact decimal for a float option (``6`` not ``6.0``; ``0.25``)."""
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


@dataclass(frozen=True)
class Stage:
    """One stage: ``repeats`` identical MBConv blocks, the first of which applies ``stride``."""

    repeats: int
    kernel: int
    stride: int
    expand: float
    channels: int
    se: float | None = 0.25
    skip: bool = True

    def __post_init__(self) -> None:
        _check_int("repeats", self.repeats, 1)
        _check_int("kernel", self.kernel, 1)
        if self.kernel % 2 == 0:
            raise ConfigError(f"stage kernel: expected an odd kernel size, got {self.kernel}")
        _check_int("stride", self.stride, 1)
        if self.stride not in (1, 2):
            raise ConfigError(f"stage stride: expected 1 or 2, got {self.stride}")
        _check_int("channels", self.channels, 1)
        if isinstance(self.expand, bool) or not isinstance(self.expand, (int, float)) or self.expand < 1:
            raise ConfigError(f"stage expand: expected a number >= 1, got {self.expand!r}")
        object.__setattr__(self, "expand", float(self.expand) if not float(self.expand).is_integer()
                           else int(self.expand))
        if self.se is not None:
            if isinstance(self.se, bool) or not isinstance(self.se, (int, float)) or not 0 < self.se <= 1:
                raise ConfigError(f"stage se: expected a ratio in (0, 1] or None, got {self.se!r}")
            object.__setattr__(self, "se", float(self.se))
        if not isinstance(self.skip, bool):
            raise ConfigError(f"stage skip: expected a bool, got {self.skip!r}")

    @property
    def block(self) -> str:
        """timm block type: ``ds`` for expansion 1 (no expand conv), ``ir`` otherwise."""
        return "ds" if self.expand == 1 else "ir"

    def __str__(self) -> str:
        s = (f"{self.block}_r{self.repeats}_k{self.kernel}_s{self.stride}_e{_fmt_num(self.expand)}"
             f"_c{self.channels}")
        if self.se is not None:
            s += f"_se{_fmt_num(self.se)}"
        if not self.skip:
            s += "_noskip"
        return s


@dataclass(frozen=True)
class Arch:
    """A whole network: stem → stages → 1×1 head conv → pool → dropout → classifier.

    Immutable and hashable by value, so it can key caches and be compared across processes.
    """

    stem_channels: int
    stem_stride: int
    stages: tuple[Stage, ...]
    head_channels: int
    dropout: float = 0.2
    drop_path: float = 0.2
    act: str = "silu"
    bn_eps: float = BN_EPS
    bn_momentum: float = BN_MOMENTUM

    def __post_init__(self) -> None:
        _check_int("stem channels", self.stem_channels, 1)
        if self.stem_stride not in (1, 2) or isinstance(self.stem_stride, bool):
            raise ConfigError(f"stem stride: expected 1 or 2, got {self.stem_stride!r}")
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise ConfigError("arch stages: expected at least one stage")
        for st in self.stages:
            if not isinstance(st, Stage):
                raise ConfigError(f"arch stages: expected Stage objects, got {type(st).__name__}")
        _check_int("head channels", self.head_channels, 1)
        for name in ("dropout", "drop_path"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise ConfigError(f"arch {name}: expected a number in [0, 1), got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.act not in ACTIVATIONS:
            raise ConfigError(f"arch act: expected one of {', '.join(ACTIVATIONS)}, got {self.act!r}")
        if not _is_num(self.bn_eps) or not 0 < self.bn_eps < 1:
            raise ConfigError(f"arch bn_eps: expected a number in (0, 1), got {self.bn_eps!r}")
        if not _is_num(self.bn_momentum) or not 0 < self.bn_momentum <= 1:
            raise ConfigError(f"arch bn_momentum: expected a number in (0, 1], got {self.bn_momentum!r}")
        object.__setattr__(self, "bn_eps", float(self.bn_eps))
        object.__setattr__(self, "bn_momentum", float(self.bn_momentum))

    def __str__(self) -> str:
        parts = [f"stem_c{self.stem_channels}_s{self.stem_stride}"]
        parts += [str(s) for s in self.stages]
        head = f"head_c{self.head_channels}_do{_fmt_num(self.dropout)}_dp{_fmt_num(self.drop_path)}_{self.act}"
        if self.bn_eps != BN_EPS:
            head += f"_bneps{_fmt_num(self.bn_eps)}"
        if self.bn_momentum != BN_MOMENTUM:
            head += f"_bnmom{_fmt_num(self.bn_momentum)}"
        return ",".join([*parts, head])

    @property
    def num_blocks(self) -> int:
        return sum(s.repeats for s in self.stages)

    def replace(self, **fields: Any) -> Arch:
        """A copy with some top-level fields changed (validated again)."""
        return dataclasses.replace(self, **fields)

    def replace_stages(self, stages: list[int] | None = None, **fields: Any) -> Arch:
        """A copy with ``fields`` changed in every stage (or only in the 1-based ``stages`` given).

        This is how ablations are expressed: ``b0.replace_stages(se=None)`` is "no SE anywhere".
        """
        idx = set(range(1, len(self.stages) + 1)) if stages is None else set(stages)
        bad = sorted(i for i in idx if not 1 <= i <= len(self.stages))
        if bad:
            raise ConfigError(f"stage index {bad[0]}: expected 1..{len(self.stages)}")
        new = tuple(dataclasses.replace(s, **fields) if i in idx else s
                    for i, s in enumerate(self.stages, start=1))
        return dataclasses.replace(self, stages=new)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (the JSON spec of an arch)."""
        return dataclasses.asdict(self) | {"arch": str(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Arch:
        if not isinstance(d, dict):
            raise ConfigError(f"arch spec: expected a JSON object, got {type(d).__name__}")
        d = {k: v for k, v in d.items() if k != "arch"}
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(f.name for f in dataclasses.fields(cls) if f.name not in d
                         and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        if missing:
            raise ConfigError(f"arch spec: missing key(s) {', '.join(missing)}")
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ConfigError(f"arch spec: unknown key {unknown[0]!r}; allowed keys are {', '.join(sorted(fields))}")
        if not isinstance(d["stages"], (list, tuple)) or not all(isinstance(s, dict) for s in d["stages"]):
            raise ConfigError("arch spec: 'stages' must be a list of objects (one per stage)")
        try:
            stages = tuple(Stage(**s) for s in d.pop("stages"))
            return cls(stages=stages, **d)
        except (TypeError, KeyError) as exc:
            raise ConfigError(f"arch spec: {exc}") from None


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _quote(text: str, limit: int = 60) -> str:
    """``repr(text)``, shortened to ``limit`` characters (for one-line error messages)."""
    r = repr(text)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _check_int(name: str, v: Any, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"{name}: expected an integer >= {lo}, got {v!r}")


# ---------------------------------------------------------------------------------------------- parsing

_NUM = r"(\d+(?:\.\d+)?)"
_SCI = r"(\d+(?:\.\d+)?(?:e-?\d+)?)"  # also 1e-05 (how repr writes a small eps)
_STEM_RE = re.compile(r"stem_c(\d+)_s(\d+)")
_HEAD_RE = re.compile(rf"head_c(\d+)_do{_NUM}_dp{_NUM}_([a-z]+)(?:_bneps{_SCI})?(?:_bnmom{_SCI})?")
_BLOCK_OPT_RE = re.compile(r"(r|k|s|e|c|se)(\d+(?:\.\d+)?)\Z")


def _parse_block(tok: str) -> Stage:
    parts = tok.split("_")
    kind = parts[0]
    if kind not in BLOCK_TYPES:
        raise ConfigError(f"arch string token {tok!r}: expected a block type ds or ir, got {kind!r}")
    opts: dict[str, str] = {}
    skip = True
    for p in parts[1:]:
        if p == "noskip":
            if not skip:
                raise ConfigError(f"arch string token {tok!r}: option 'noskip' given twice")
            skip = False
            continue
        m = _BLOCK_OPT_RE.match(p)
        if not m:
            raise ConfigError(f"arch string token {tok!r}: bad option {p!r}; expected r<int>, k<int>, s<int>, "
                              "e<num>, c<int>, se<num> or noskip")
        if m.group(1) in opts:
            raise ConfigError(f"arch string token {tok!r}: option {m.group(1)!r} given twice")
        opts[m.group(1)] = m.group(2)
    missing = [k for k in ("r", "k", "s", "c") if k not in opts]
    if missing:
        raise ConfigError(f"arch string token {tok!r}: missing option(s) {', '.join(missing)} "
                          "(expected e.g. ir_r2_k3_s2_e6_c24_se0.25)")
    expand = float(opts.get("e", "1"))
    if not math.isfinite(expand):
        raise ConfigError(f"arch string token {_quote(tok)}: expansion {opts['e'][:20]}... is not a finite number")
    if kind == "ds" and expand != 1:
        raise ConfigError(f"arch string token {tok!r}: a ds block has expansion 1; use ir for e{opts['e']}")
    for k in ("r", "k", "s", "c"):
        if "." in opts[k]:
            raise ConfigError(f"arch string token {tok!r}: option {k} expects an integer, got {opts[k]}")
    try:
        return Stage(repeats=int(opts["r"]), kernel=int(opts["k"]), stride=int(opts["s"]), expand=expand,
                     channels=int(opts["c"]), se=float(opts["se"]) if "se" in opts else None, skip=skip)
    except ConfigError as exc:
        raise ConfigError(f"arch string token {tok!r}: {exc}") from None


def parse_arch(text: str) -> Arch:
    """Parse an arch string (see the module docstring for the grammar); inverse of ``str(arch)``."""
    try:
        return _parse_arch(text)
    except ConfigError:
        raise
    except ValueError:  # a number of more than 4,300 digits (Python's int() limit)
        raise ConfigError("arch string: a number has more than 4,300 digits") from None


def _parse_arch(text: str) -> Arch:
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("arch string: expected a non-empty string such as "
                          "'stem_c32_s2,ds_r1_k3_s1_e1_c16_se0.25,...,head_c1280_do0.2_dp0.2_silu'")
    toks = [t.strip() for t in text.strip().split(",")]
    if len(toks) < 3:
        raise ConfigError(f"arch string: expected 'stem_...,<blocks>,head_...', got {len(toks)} token(s)")
    m = _STEM_RE.fullmatch(toks[0])
    if not m:
        raise ConfigError(f"arch string token {toks[0]!r}: expected a stem token like stem_c32_s2")
    stem_c, stem_s = int(m.group(1)), int(m.group(2))
    h = _HEAD_RE.fullmatch(toks[-1])
    if not h:
        raise ConfigError(f"arch string token {toks[-1]!r}: expected a head token like "
                          f"head_c1280_do0.2_dp0.2_silu (activation one of {', '.join(ACTIVATIONS)}), "
                          "optionally followed by _bneps<num> and _bnmom<num>")
    stages = tuple(_parse_block(t) for t in toks[1:-1])
    try:
        bn = {k: float(v) for k, v in (("bn_eps", h.group(5)), ("bn_momentum", h.group(6))) if v is not None}
        return Arch(stem_channels=stem_c, stem_stride=stem_s, stages=stages, head_channels=int(h.group(1)),
                    dropout=float(h.group(2)), drop_path=float(h.group(3)), act=h.group(4), **bn)
    except ConfigError as exc:
        raise ConfigError(f"arch string: {exc}") from None

