"""Training recipe for one proxy trial, validated the same way as every other study-file table."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nas_harness._config import dataclass_from_table
from nas_harness.errors import ConfigError

OPTIMIZERS = ("sgd", "adamw", "rmsprop")
SCHEDULES = ("cosine", "onecycle", "constant")
AMP = ("auto", "bf16", "off")
AUGMENTS = ("crop", "flip", "cutout")
CPU_KERNELS = ("auto", "off")
DEFAULT_EPOCHS = 2.0


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class TrainConfig:
    """Proxy-training recipe.  The budget is ``epochs`` (may be fractional) or ``steps``, not both;
    with neither, ``DEFAULT_EPOCHS``.

    Defaults are the CPU proxy recipe measured in the README: SGD-Nesterov, cosine with a short warm-up,
    label smoothing 0.1, flip only (random crops slow short proxies down: 0.50 vs 0.69 val acc in a
    62-step test; use ``augment=['crop', 'flip']`` for longer runs).  ``bn_recalibrate`` batches re-estimate
    BatchNorm statistics before every evaluation, so even a few-hundred-step run is evaluated with valid
    statistics.  ``zero_init_residual`` zeroes the last BN scale of every residual MBConv branch at the start
    (blocks start as identities; measured +7 points after 60 steps on Fashion-MNIST).  ``crop_padding``
    defaults to resolution // 8 (4 px at 32 px).  ``threads='auto'`` uses the cores other work is not
    using right now (sampled for 0.1 s at the start; at least one): OpenMP threads that share a core with
    another job stall on the descheduled peer (measured 5-8x slower).
    """

    epochs: float | None = None  # None with steps None -> DEFAULT_EPOCHS
    steps: int | None = None
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    weight_decay: float = 5e-5
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_epochs: float = 0.2
    label_smoothing: float = 0.1
    grad_clip: float | None = None
    amp: str = "auto"
    channels_last: str | bool = "auto"
    compile: bool = False
    device: str = "auto"
    seed: int = 0
    bn_recalibrate: int = 4
    bn_momentum: float | None = None
    augment: tuple[str, ...] = field(default=("flip",))
    crop_padding: int | None = None
    zero_init_residual: bool = True
    eval_batch_size: int = 512
    threads: int | str | None = "auto"
    cpu_kernels: str = "auto"

    def __post_init__(self) -> None:
        self._normalise()
        self.validate()

    def _normalise(self) -> None:
        if isinstance(self.augment, list):
            object.__setattr__(self, "augment", tuple(self.augment))
        if self.epochs is None and self.steps is None:
            object.__setattr__(self, "epochs", DEFAULT_EPOCHS)

    def validate(self, where: str = "train") -> None:
        """Raise ConfigError naming ``<where>.<field>`` and what is allowed, for the first bad field."""

        def bad(name: str, allowed: str) -> ConfigError:
            return ConfigError(f"{where}.{name} = {getattr(self, name)!r} is invalid; allowed: {allowed}")

        if self.epochs is None and self.steps is None:
            raise ConfigError(f"{where}: set a budget, {where}.epochs or {where}.steps")
        if self.epochs is not None and self.steps is not None:
            raise ConfigError(f"{where}.epochs and {where}.steps are mutually exclusive; set one")
        if self.epochs is not None and (not _is_num(self.epochs) or self.epochs <= 0):
            raise bad("epochs", "a number > 0")
        if self.steps is not None and (not _is_int(self.steps) or self.steps < 1):
            raise bad("steps", "an integer >= 1")
        for name in ("batch_size", "eval_batch_size"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(name, "an integer >= 1")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", ", ".join(OPTIMIZERS))
        if not _is_num(self.lr) or self.lr <= 0:
            raise bad("lr", "a number > 0")
        if not _is_num(self.weight_decay) or self.weight_decay < 0:
            raise bad("weight_decay", "a number >= 0")
        if not _is_num(self.momentum) or not 0 <= self.momentum < 1:
            raise bad("momentum", "a number in [0, 1)")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", ", ".join(SCHEDULES))
        if not _is_num(self.warmup_epochs) or self.warmup_epochs < 0:
            raise bad("warmup_epochs", "a number >= 0")
        if not _is_num(self.label_smoothing) or not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", "a number in [0, 1)")
        if self.grad_clip is not None and (not _is_num(self.grad_clip) or self.grad_clip <= 0):
            raise bad("grad_clip", "a number > 0 or null")
        if self.amp not in AMP:
            raise bad("amp", ", ".join(AMP))
        if self.channels_last not in ("auto", True, False):
            raise bad("channels_last", "auto, true, false")
        if not isinstance(self.compile, bool):
            raise bad("compile", "true or false")
        dev = self.device
        if not isinstance(dev, str) or not (dev in ("auto", "cpu", "cuda") or
                                            (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise bad("device", "auto, cpu, cuda, cuda:<index>")
        if not _is_int(self.seed):
            raise bad("seed", "an integer")
        if not _is_int(self.bn_recalibrate) or self.bn_recalibrate < 0:
            raise bad("bn_recalibrate", "an integer >= 0 (batches)")
        if self.bn_momentum is not None and (not _is_num(self.bn_momentum) or not 0 < self.bn_momentum <= 1):
            raise bad("bn_momentum", "a number in (0, 1] or null")
        if not isinstance(self.augment, tuple) or any(a not in AUGMENTS for a in self.augment):
            raise bad("augment", f"a list drawn from {', '.join(AUGMENTS)}")
        if self.crop_padding is not None and (not _is_int(self.crop_padding) or self.crop_padding < 0):
            raise bad("crop_padding", "an integer >= 0, or null for resolution // 8")
        if not isinstance(self.zero_init_residual, bool):
            raise bad("zero_init_residual", "true or false")
        if self.threads not in (None, "auto") and (not _is_int(self.threads) or self.threads < 1):
            raise bad("threads", "auto, an integer >= 1, or null (leave torch's setting)")
        if self.cpu_kernels not in CPU_KERNELS:
            raise bad("cpu_kernels", ", ".join(CPU_KERNELS))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "train") -> TrainConfig:
        """Build from a study-file table; give ``epochs`` or ``steps`` (neither: the default epochs)."""
        obj = dataclass_from_table(cls, d, where)
        obj._normalise()
        obj.validate(where)
        return obj

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["augment"] = list(self.augment)
        return d
