"""Named architectures and what a user may type for one.

- :func:`efficientnet_b0`: EfficientNet-B0 as data (Table 1 of Tan & Le 2019, torchvision's
  ``efficientnet_b0``);
- :data:`NAMED_VARIANTS` and :func:`efficientnet`: the official B0-B7, compound-scaled from B0 with the
  reference implementation's width, depth, resolution, dropout and BatchNorm settings (torchvision's B5-B7
  use BN eps 1e-3 and momentum 0.01, the TF reference values; B0-B4 PyTorch's defaults), so that
  torchvision's weights load into every one of them and give the same outputs;
- :func:`resolve_arch`: ``b0``..``b7`` (or ``efficientnet-b3``), an arch string, or a file holding either an
  arch string or a JSON spec.

Layering: this module sits above :mod:`nas_harness.arch` (values, parsing, channel arithmetic) and
:mod:`nas_harness.scaling` (scaling rules); neither imports it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from nas_harness._config import read_file
from nas_harness.arch import BN_EPS, BN_MOMENTUM, Arch, Stage, _quote, parse_arch
from nas_harness.errors import ConfigError
from nas_harness.scaling import ScaledArch, scale_arch


class Variant(NamedTuple):
    """One official EfficientNet variant: multipliers on B0, its input size, and its recipe settings."""

    width: float
    depth: float
    resolution: int
    dropout: float
    bn_eps: float = BN_EPS
    bn_momentum: float = BN_MOMENTUM


#: name -> Variant: the reference implementation's settings (torchvision ``efficientnet_b0`` ... ``_b7``).
NAMED_VARIANTS: dict[str, Variant] = {
    "b0": Variant(1.0, 1.0, 224, 0.2),
    "b1": Variant(1.0, 1.1, 240, 0.2),
    "b2": Variant(1.1, 1.2, 260, 0.3),
    "b3": Variant(1.2, 1.4, 300, 0.3),
    "b4": Variant(1.4, 1.8, 380, 0.4),
    "b5": Variant(1.6, 2.2, 456, 0.4, bn_eps=1e-3, bn_momentum=0.01),
    "b6": Variant(1.8, 2.6, 528, 0.5, bn_eps=1e-3, bn_momentum=0.01),
    "b7": Variant(2.0, 3.1, 600, 0.5, bn_eps=1e-3, bn_momentum=0.01),
}


def efficientnet_b0() -> Arch:
    """EfficientNet-B0 exactly as in Table 1 of Tan & Le (2019) and torchvision's ``efficientnet_b0``."""
    table = [(3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
             (5, 2, 6, 192, 4), (3, 1, 6, 320, 1)]
    stages = tuple(Stage(repeats=r, kernel=k, stride=s, expand=e, channels=c, se=0.25)
                   for k, s, e, c, r in table)
    return Arch(stem_channels=32, stem_stride=2, stages=stages, head_channels=1280, dropout=0.2,
                drop_path=0.2, act="silu")


def _variant_key(name: str) -> str:
    return name.strip().lower().replace("efficientnet", "").lstrip("-_")


def efficientnet(name: str) -> ScaledArch:
    """The official variant ``b0``…``b7`` (width, depth, resolution, dropout and BN settings of the reference)."""
    key = _variant_key(name)
    if key not in NAMED_VARIANTS:
        raise ConfigError(f"variant {name!r}: expected one of {', '.join(NAMED_VARIANTS)}")
    v = NAMED_VARIANTS[key]
    arch = scale_arch(efficientnet_b0(), width=v.width, depth=v.depth, dropout=v.dropout)
    arch = arch.replace(bn_eps=v.bn_eps, bn_momentum=v.bn_momentum)
    return ScaledArch(arch, v.resolution, v.width, v.depth, name=key)


#: Largest arch file read by :func:`resolve_arch` (an arch string or JSON spec is a few KB).
MAX_ARCH_FILE_BYTES = 1 << 20


def resolve_arch(text: str) -> Arch:
    """Turn what a user typed into an arch: ``b0``…``b7`` (or ``efficientnet-b3``), an arch string, or a
    file holding an arch string or a JSON spec.

    Anything else (including a string too long or too odd to be a file name) is a one-line ConfigError; a
    file that cannot be read or does not hold an arch is a one-line ConfigError naming the file.
    """
    if not isinstance(text, str):
        raise ConfigError(f"arch: expected a string (b0..b7, an arch string or a file), got {type(text).__name__}")
    key = _variant_key(text)
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

    where = f"arch file {_quote(str(p))}"
    try:
        content = read_file(p, MAX_ARCH_FILE_BYTES, where, what="an arch file").decode("utf-8").strip()
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
