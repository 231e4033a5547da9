"""The ``[latency]`` table of a study file and the resolved settings a measurement runs with.

:class:`LatencyConfig` is what a user writes; :class:`LatencySettings` is what a worker needs (the study's
resolution and classifier size filled in, the table path made absolute so Ray workers in other folders find
it).  Why ``threads = 1`` by default: deployment targets of MBConv nets (phones, edge CPUs) run a batch-1
forward on one or a few big cores, and a single-threaded measurement is also the one least disturbed by other
work on a shared machine, so it is the most reproducible figure a CPU gives.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from nas_harness._config import RESULTS_DIR, ConfigModel, Int, Rules, Text, allowed, bad, inert
from nas_harness.errors import ConfigError

DEVICE_PATTERN = re.compile(r"^(cpu|cuda|cuda:\d{1,2})\Z")
DEVICE_FORMS = "'cpu', 'cuda' or 'cuda:N'"
MEMORY_FORMATS = ("channels_last", "contiguous")


def check_device(device: str, where: str = "latency.device") -> str:
    """The canonical device (``cpu``, ``cuda:N``) if it exists on this machine, else one ConfigError line."""
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise ConfigError(f"{where} = {device!r} is invalid: allowed: {DEVICE_FORMS}")
    if device == "cpu":
        return device
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= count:
        have = f"{count} CUDA device(s) (cuda:0..cuda:{count - 1})" if count else "no CUDA device"
        raise ConfigError(f"{where} = {device!r} but this machine has {have}; use 'cpu' or an existing cuda:N")
    return f"cuda:{index}"


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class LatencyConfig(ConfigModel):
    """``[latency]``: how and where the latency of a candidate is measured and predicted."""

    device: Annotated[Text, Field(json_schema_extra=allowed(DEVICE_FORMS), description=(
        "device the latency is measured on: 'cpu' (with a fixed thread count) or a CUDA device"))] = "cpu"
    threads: Annotated[Int, Field(ge=1, le=1024, description=(
        "applies to device = 'cpu' only: intra-op threads of the measurement (1 = a phone-like single core, "
        "and the figure least disturbed by other work); part of the table's device fingerprint"))] = 1
    batch: Annotated[Int, Field(ge=1, le=4096, description="batch size of the measured forward pass")] = 1
    resolution: Annotated[Int | None, Field(ge=8, le=4096, description=(
        "input size (px); omit for the study's trial.macs_resolution"))] = None
    table: Annotated[Text, Field(max_length=4096, description=(
        "lookup table: a .json file, or a folder holding <device fingerprint>.json; '' = <run.results_dir>/latency/ "
        "(shared by every study of that folder)"))] = ""
    repeats: Annotated[Int, Field(ge=3, le=100_000, description="timed runs per round (median and IQR)")] = 20
    rounds: Annotated[Int, Field(ge=1, le=1000, description=(
        "rounds of repeats, interleaved over everything measured together; the fastest round is kept (a "
        "shared machine's speed changes within seconds, and interference only adds time)"))] = 5
    warmup: Annotated[Int, Field(ge=0, le=100_000, description="untimed runs before the timed ones")] = 5
    memory_format: Annotated[Literal["auto", "channels_last", "contiguous"], Field(description=(
        "layout of the measured network; 'auto' tries both once per table and keeps the faster"))] = "auto"

    _inert: ClassVar[Rules] = inert(threads=lambda c: c.device != "cpu")

    @field_validator("device")
    @classmethod
    def _device_form(cls, v: str) -> str:
        if not DEVICE_PATTERN.match(v):
            raise bad("", "{value} is invalid: allowed: {forms}", value=repr(v), forms=DEVICE_FORMS)
        return v

    def settings(self, resolution: int, num_classes: int = 1000, results_dir: str | Path = RESULTS_DIR
                 ) -> LatencySettings:
        """The resolved settings (table path absolute; resolution defaulted to the given one)."""
        table = Path(self.table) if self.table else Path(results_dir) / "latency"
        as_file = table.suffix.lower() == ".json"
        return LatencySettings(device=self.device, threads=self.threads if self.device == "cpu" else None,
                               batch=self.batch, resolution=self.resolution or int(resolution),
                               num_classes=int(num_classes), table=str(table.resolve()), table_is_file=as_file,
                               repeats=self.repeats, warmup=self.warmup, rounds=self.rounds,
                               memory_format=self.memory_format)

    def check_machine(self, where: str = "latency") -> None:
        """Refuse settings this machine cannot measure (a missing CUDA device, more threads than cores)."""
        check_device(self.device, f"{where}.device")
        if self.device == "cpu" and self.threads > _cores():
            raise ConfigError(f"{where}.threads = {self.threads} but this process may use {_cores()} core(s); "
                              "a measurement with more threads than cores measures the scheduler")


@dataclass(frozen=True)
class LatencySettings:
    """Everything a latency measurement or prediction depends on (picklable, hashable: one per study)."""

    device: str = "cpu"
    threads: int | None = 1
    batch: int = 1
    resolution: int = 224
    num_classes: int = 1000
    table: str = f"{RESULTS_DIR}/latency"
    table_is_file: bool = False
    repeats: int = 20
    warmup: int = 5
    rounds: int = 5
    memory_format: str = "auto"
    in_channels: int = 3

    def __post_init__(self) -> None:
        check = [("batch", self.batch, 1), ("resolution", self.resolution, 8), ("num_classes", self.num_classes, 1),
                 ("repeats", self.repeats, 1), ("warmup", self.warmup, 0), ("rounds", self.rounds, 1),
                 ("in_channels", self.in_channels, 1)]
        for name, value, lo in check:
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ConfigError(f"latency.{name}: expected an integer >= {lo}, got {value!r}")
        if not DEVICE_PATTERN.match(str(self.device)):
            raise ConfigError(f"latency.device = {self.device!r} is invalid: allowed: {DEVICE_FORMS}")
        if self.device == "cpu" and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                     or self.threads < 1):
            raise ConfigError(f"latency.threads: expected an integer >= 1 on the CPU, got {self.threads!r}")
        if self.memory_format not in ("auto", *MEMORY_FORMATS):
            raise ConfigError(f"latency.memory_format = {self.memory_format!r} is invalid: allowed: 'auto', "
                              "'channels_last', 'contiguous'")

    def table_path(self, fingerprint_id: str) -> Path:
        """The table file: the configured file, or ``<folder>/<fingerprint id>.json``."""
        return Path(self.table) if self.table_is_file else Path(self.table) / f"{fingerprint_id}.json"

    @property
    def context(self) -> str:
        """What the per-network overhead fit depends on besides the device: input size, batch, classes."""
        return f"r{self.resolution}_b{self.batch}_c{self.num_classes}_i{self.in_channels}"

    def comparable(self) -> dict[str, Any]:
        """What makes latencies of two runs comparable (stored with a study whose cost is latency)."""
        return {"device": self.device, "threads": self.threads, "batch": self.batch, "resolution": self.resolution,
                "num_classes": self.num_classes, "memory_format": self.memory_format}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
