"""Architectures as data: an immutable description of an MBConv network and its canonical string.

An :class:`Arch` is what the search space samples, what the builder builds, what the FLOP counter counts and
what every result row records.  Its string form follows timm's block-string convention so researchers
recognise it, extended with a stem and a head token so that one string describes the whole network.

Grammar (tokens separated by ``,``; options inside a token separated by ``_``)::

    arch   := stem "," block ("," block)* "," head
    stem   := "stem" "_c" INT "_s" INT
    block  := ("ds" | "ir") "_r" INT "_k" INT "_s" INT "_e" NUM "_c" INT ["_se" NUM] ["_noskip"]
    head   := "head" "_c" INT "_do" NUM "_dp" NUM "_" ACT
    ACT    := "silu" | "relu" | "hswish" | "gelu"

Each ``block`` token is one *stage*: ``r`` repeats of the same MBConv block, the first with stride ``s``.
``ds`` (depthwise-separable) is the spelling of an ``e1`` block (no 1×1 expansion); ``ir`` (inverted
residual) is used for every other expansion ratio.  ``se`` is the squeeze ratio relative to the *block input*
channels (squeeze = max(1, int(in × se))); no ``se`` option means no SE.  ``noskip`` disables the residual add
(which otherwise applies when stride is 1 and in == out).  ``do`` is the classifier dropout, ``dp`` the
stochastic-depth rate, scaled linearly over the blocks.

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
from pathlib import Path
from typing import Any

from nas_harness.errors import ConfigError

ACTIVATIONS = ("silu", "relu", "hswish", "gelu")
BLOCK_TYPES = ("ds", "ir")


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

    def __str__(self) -> str:
        parts = [f"stem_c{self.stem_channels}_s{self.stem_stride}"]
        parts += [str(s) for s in self.stages]
        parts.append(f"head_c{self.head_channels}_do{_fmt_num(self.dropout)}_dp{_fmt_num(self.drop_path)}"
                     f"_{self.act}")
        return ",".join(parts)

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
        d = {k: v for k, v in d.items() if k != "arch"}
        try:
            stages = tuple(Stage(**s) for s in d.pop("stages"))
            return cls(stages=stages, **d)
        except (TypeError, KeyError) as exc:
            raise ConfigError(f"arch spec: {exc}") from None


def _check_int(name: str, v: Any, lo: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConfigError(f"{name}: expected an integer >= {lo}, got {v!r}")


# ---------------------------------------------------------------------------------------------- parsing

_NUM = r"(\d+(?:\.\d+)?)"
_STEM_RE = re.compile(r"stem_c(\d+)_s(\d+)")
_HEAD_RE = re.compile(rf"head_c(\d+)_do{_NUM}_dp{_NUM}_([a-z]+)")
_BLOCK_OPT_RE = re.compile(r"(r|k|s|e|c|se)(\d+(?:\.\d+)?)$")


def _parse_block(tok: str) -> Stage:
    parts = tok.split("_")
    kind = parts[0]
    if kind not in BLOCK_TYPES:
        raise ConfigError(f"arch string token {tok!r}: expected a block type ds or ir, got {kind!r}")
    opts: dict[str, str] = {}
    skip = True
    for p in parts[1:]:
        if p == "noskip":
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
                          f"head_c1280_do0.2_dp0.2_silu (activation one of {', '.join(ACTIVATIONS)})")
    stages = tuple(_parse_block(t) for t in toks[1:-1])
    try:
        return Arch(stem_channels=stem_c, stem_stride=stem_s, stages=stages, head_channels=int(h.group(1)),
                    dropout=float(h.group(2)), drop_path=float(h.group(3)), act=h.group(4))
    except ConfigError as exc:
        raise ConfigError(f"arch string: {exc}") from None


# ---------------------------------------------------------------------------------------------- presets

def efficientnet_b0() -> Arch:
    """EfficientNet-B0 exactly as in Table 1 of Tan & Le (2019) and torchvision's ``efficientnet_b0``."""
    table = [(3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
             (5, 2, 6, 192, 4), (3, 1, 6, 320, 1)]
    stages = tuple(Stage(repeats=r, kernel=k, stride=s, expand=e, channels=c, se=0.25)
                   for k, s, e, c, r in table)
    return Arch(stem_channels=32, stem_stride=2, stages=stages, head_channels=1280, dropout=0.2,
                drop_path=0.2, act="silu")


#: Largest arch file read by :func:`resolve_arch` (an arch string or JSON spec is a few KB).
MAX_ARCH_FILE_BYTES = 1 << 20


def _quote(text: str, limit: int = 60) -> str:
    r = repr(text)
    return r if len(r) <= limit else r[: limit - 3] + "..."


def resolve_arch(text: str) -> Arch:
    """Turn what a user typed into an arch: ``b0``…``b7`` (or ``efficientnet-b3``), an arch string, or a
    file holding an arch string or a JSON spec.

    Anything else (including a string too long or too odd to be a file name) is a one-line ConfigError; a
    file that cannot be read or does not hold an arch is a one-line ConfigError naming the file.
    """
    from nas_harness.scaling import NAMED_VARIANTS, efficientnet

    if not isinstance(text, str):
        raise ConfigError(f"arch: expected a string (b0..b7, an arch string or a file), got {type(text).__name__}")
    key = text.strip().lower().replace("efficientnet", "").lstrip("-_")
    if key in NAMED_VARIANTS:
        return efficientnet(key).arch
    if "," in text:
        return parse_arch(text)
    p = Path(text)
    try:
        is_file = bool(text.strip()) and p.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte, ...
        is_file = False
    if not is_file:
        raise ConfigError(f"arch {_quote(text)}: expected b0..b7, an arch string, or an existing file")
    return _read_arch_file(p)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a finite number")


def _read_arch_file(p: Path) -> Arch:
    """The arch held by a file: its first line as an arch string, or a JSON spec (``{"arch": ...}`` or
    :meth:`Arch.to_dict`); every failure is one ConfigError line naming the file."""
    import json

    where = f"arch file {_quote(str(p))}"
    try:
        size = p.stat().st_size
        if size > MAX_ARCH_FILE_BYTES:
            raise ConfigError(f"{where}: {size:,} bytes; an arch file is at most {MAX_ARCH_FILE_BYTES:,}")
        content = p.read_bytes().decode("utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (byte {exc.start}); expected an arch string or JSON spec"
                          ) from None
    if "\x00" in content:
        raise ConfigError(f"{where}: binary data (a NUL byte); expected an arch string or JSON spec")
    try:
        if content.startswith("{"):
            try:
                d = json.loads(content, parse_constant=_no_constant)
            except RecursionError:
                raise ConfigError("nested too deeply") from None
            except ValueError as exc:
                raise ConfigError(f"invalid JSON ({exc})") from None
            if not isinstance(d, dict):
                raise ConfigError("expected a JSON object")
            return parse_arch(d["arch"]) if "arch" in d else Arch.from_dict(d)
        return parse_arch(content.splitlines()[0] if content else "")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {' '.join(str(exc).split())}") from None
    except (TypeError, KeyError, ValueError, AttributeError) as exc:  # a spec of the wrong shape
        raise ConfigError(f"{where}: not an arch spec ({type(exc).__name__}: {exc})") from None
