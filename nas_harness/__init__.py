"""nas-harness: architecture search and ablations for EfficientNet-style (MBConv) networks.

The core public names are re-exported here; each layer lives in its own module or subpackage
(``arch``, ``space``, ``scaling``, ``model``, ``depthwise``, ``fused``, ``native``, ``flops``, ``data``, ``train``,
``trial``, ``backends``, ``study``, ``ablation``, ``results``, ``plots``, ``report``, ``cli``).
"""

from nas_harness.arch import Arch, Stage, efficientnet_b0, parse_arch, resolve_arch
from nas_harness.errors import ConfigError, DataError, NonFiniteLossError, TrialError, TrialOutOfMemoryError
from nas_harness.flops import MacCount, count_macs, count_params, fvcore_macs
from nas_harness.model import build_model, stock_layers
from nas_harness.scaling import ScaledArch, compound, efficientnet, scale_arch
from nas_harness.space import SearchSpace, StageChoices

__version__ = "0.1.0"

__all__ = [
    "Arch", "ConfigError", "DataError", "MacCount", "NonFiniteLossError", "ScaledArch", "SearchSpace", "Stage",
    "StageChoices", "TrialError", "TrialOutOfMemoryError", "__version__", "build_model", "compound",
    "count_macs", "count_params", "efficientnet", "efficientnet_b0", "fvcore_macs", "parse_arch",
    "resolve_arch", "scale_arch", "stock_layers",
]
