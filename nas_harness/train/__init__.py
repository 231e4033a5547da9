"""Fast proxy trainer (dataset on device, batched augmentation) and the conventional baseline pipeline."""

from nas_harness.train.config import TrainConfig
from nas_harness.train.optim import build_optimizer, lr_factor, param_groups
from nas_harness.train.trainer import (
    EpochReport,
    TrainResult,
    evaluate,
    recalibrate_bn,
    resolve_device,
    train,
    zero_init_residual,
)

__all__ = [
    "EpochReport",
    "TrainConfig",
    "TrainResult",
    "build_optimizer",
    "evaluate",
    "lr_factor",
    "param_groups",
    "recalibrate_bn",
    "resolve_device",
    "train",
    "zero_init_residual",
]
