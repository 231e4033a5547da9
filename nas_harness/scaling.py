"""Compound scaling (Tan & Le 2019, §3.3): depth d = α^φ, width w = β^φ, resolution r = γ^φ.

Channel and repeat rounding follow the reference implementation (TF ``round_filters`` / torchvision
``_make_divisible``: nearest multiple of 8, bumped up one step if that loses more than 10%; repeats rounded
up), so B1–B7 built from :func:`efficientnet_b0` have the reference implementation's exact parameter counts.
Scaling works on any :class:`~nas_harness.arch.Arch`, which is the point: scale a base the search found.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from nas_harness.arch import Arch, efficientnet_b0
from nas_harness.errors import ConfigError

#: name -> (width, depth, resolution, dropout), the official EfficientNet variants.
NAMED_VARIANTS: dict[str, tuple[float, float, int, float]] = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}

DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA = 1.2, 1.1, 1.15


@dataclass(frozen=True)
class ScaledArch:
    """A scaled network together with the input resolution it is meant to run at."""

    arch: Arch
    resolution: int
    width: float
    depth: float
    name: str = ""


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without losing more than 10% (reference rule)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(repeats * depth))


def scale_arch(arch: Arch, width: float = 1.0, depth: float = 1.0, dropout: float | None = None) -> Arch:
    """Scale channels (stem, every stage, head) by ``width`` and repeats by ``depth``.

    ``width=1, depth=1`` returns an equal arch (rounding is idempotent on multiples of 8).
    """
    for name, v in (("width", width), ("depth", depth)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise ConfigError(f"scaling {name}: expected a positive number, got {v!r}")
    stages = tuple(dataclasses.replace(s, channels=make_divisible(s.channels * width),
                                       repeats=round_repeats(s.repeats, depth)) for s in arch.stages)
    return dataclasses.replace(
        arch,
        stem_channels=make_divisible(arch.stem_channels * width),
        stages=stages,
        head_channels=make_divisible(arch.head_channels * width),
        dropout=arch.dropout if dropout is None else dropout,
    )


def compound(arch: Arch, phi: float, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
             gamma: float = DEFAULT_GAMMA, base_resolution: int = 224) -> ScaledArch:
    """Compound-scale ``arch`` by coefficient φ: depth α^φ, width β^φ, resolution γ^φ (nearest pixel).

    The paper constrains α·β²·γ² ≈ 2 so that FLOPs grow by about 2^φ; any α, β, γ ≥ 1 are accepted here.
    """
    for name, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"scaling {name}: expected a number >= 1, got {v!r}")
    if not isinstance(phi, (int, float)) or isinstance(phi, bool) or phi < 0:
        raise ConfigError(f"scaling phi: expected a number >= 0, got {phi!r}")
    depth, width = alpha**phi, beta**phi
    resolution = int(round(base_resolution * gamma**phi))
    return ScaledArch(scale_arch(arch, width=width, depth=depth), resolution, width, depth, name=f"phi={phi:g}")


def efficientnet(name: str) -> ScaledArch:
    """The official variant ``b0``…``b7`` (width, depth, resolution and dropout from the paper/reference)."""
    key = name.lower().replace("efficientnet", "").lstrip("-_")
    if key not in NAMED_VARIANTS:
        raise ConfigError(f"variant {name!r}: expected one of {', '.join(NAMED_VARIANTS)}")
    width, depth, res, dropout = NAMED_VARIANTS[key]
    return ScaledArch(scale_arch(efficientnet_b0(), width=width, depth=depth, dropout=dropout), res, width,
                      depth, name=key)
