"""Compound scaling (Tan & Le 2019, §3.3): depth d = α^φ, width w = β^φ, resolution r = γ^φ.

Channel and repeat rounding follow the reference implementation (TF ``round_filters`` / torchvision
``_make_divisible``: nearest multiple of 8, bumped up one step if that loses more than 10%, see
:func:`~nas_harness.arch.make_divisible`; repeats rounded up), so B1–B7 built from B0 have the reference
implementation's exact parameter counts.  Scaling works on any :class:`~nas_harness.arch.Arch`, which is the
point: scale a base the search found.  The named variants B0–B7 are in :mod:`nas_harness.presets`; this
module depends on :mod:`nas_harness.arch` only.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from nas_harness.arch import Arch, make_divisible
from nas_harness.errors import ConfigError

__all__ = ["DEFAULT_ALPHA", "DEFAULT_BETA", "DEFAULT_GAMMA", "ScaledArch", "compound", "make_divisible",
           "round_repeats", "scale_arch"]

DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_GAMMA = 1.2, 1.1, 1.15


@dataclass(frozen=True)
class ScaledArch:
    """A scaled network together with the input resolution it is meant to run at."""

    arch: Arch
    resolution: int
    width: float
    depth: float
    name: str = ""


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

