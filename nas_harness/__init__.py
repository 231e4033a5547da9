"""nas-harness: architecture search and ablations for EfficientNet-style (MBConv) networks.

The core public names are re-exported here; each layer lives in its own module or subpackage
(``arch``, ``presets``, ``space``, ``scaling``, ``model``, ``kernels``, ``flops``, ``data``, ``train``,
``trial``, ``backends``, ``study``, ``ablation``, ``results``, ``plots``, ``report``, ``cli``).

The re-exports are resolved on first use, so ``import nas_harness.arch`` (or any other module) loads that
module and what it imports, not the whole package (and not torch for the torch-free layers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Arch": "arch", "Stage": "arch", "parse_arch": "arch",
    "efficientnet_b0": "presets", "efficientnet": "presets", "resolve_arch": "presets",
    "ConfigError": "errors", "DataError": "errors", "NonFiniteLossError": "errors", "TrialError": "errors",
    "TrialOutOfMemoryError": "errors",
    "MacCount": "flops", "count_macs": "flops", "count_params": "flops", "fvcore_macs": "flops",
    "build_model": "model",
    "accelerate": "kernels", "deaccelerate": "kernels",
    "ScaledArch": "scaling", "compound": "scaling", "scale_arch": "scaling",
    "SearchSpace": "space", "StageChoices": "space",
}

__all__ = [
    "Arch", "ConfigError", "DataError", "MacCount", "NonFiniteLossError", "ScaledArch", "SearchSpace", "Stage",
    "StageChoices", "TrialError", "TrialOutOfMemoryError", "__version__", "accelerate", "build_model", "compound",
    "count_macs", "count_params", "deaccelerate", "efficientnet", "efficientnet_b0", "fvcore_macs", "parse_arch",
    "resolve_arch", "scale_arch",
]
assert sorted(__all__) == sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # what static tools see; at run time __getattr__ below imports on first use
    from nas_harness.arch import Arch, Stage, parse_arch
    from nas_harness.errors import ConfigError, DataError, NonFiniteLossError, TrialError, TrialOutOfMemoryError
    from nas_harness.flops import MacCount, count_macs, count_params, fvcore_macs
    from nas_harness.kernels import accelerate, deaccelerate
    from nas_harness.model import build_model
    from nas_harness.presets import efficientnet, efficientnet_b0, resolve_arch
    from nas_harness.scaling import ScaledArch, compound, scale_arch
    from nas_harness.space import SearchSpace, StageChoices


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nas_harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nas_harness.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
