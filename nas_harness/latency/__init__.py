"""Measured latency as a cost: measurement, a per-device lookup table, and a predictor built on it.

- :mod:`~nas_harness.latency.measure`: time a module / a whole deployed network on ``cpu`` (fixed threads) or
  ``cuda:N`` (events + synchronisation), eval mode, warm-up, median and IQR of repeats.
- :mod:`~nas_harness.latency.table`: block keys, the device fingerprint, and the shared JSON table file
  (atomic writes, merged under a file lock, refused for another device).
- :mod:`~nas_harness.latency.predictor`: stem + Σ blocks + head + classifier, corrected by an affine overhead
  fitted on networks measured end to end; lazy filling, or a whole space ahead of time.
- :mod:`~nas_harness.latency.config`: the ``[latency]`` table of a study file.

See ``docs/latency.md``.
"""

from __future__ import annotations

from nas_harness.latency.config import LatencyConfig, LatencySettings, check_device
from nas_harness.latency.measure import Measurement, choose_memory_format, measure_module, measure_network
from nas_harness.latency.predictor import (
    LatencyPredictor,
    Prediction,
    block_module,
    fit_overhead,
    network_keys,
    predictor_for,
    space_keys,
)
from nas_harness.latency.table import BlockKey, Entry, Fingerprint, LatencyTable, device_fingerprint

__all__ = [
    "BlockKey",
    "Entry",
    "Fingerprint",
    "LatencyConfig",
    "LatencyPredictor",
    "LatencySettings",
    "LatencyTable",
    "Measurement",
    "Prediction",
    "block_module",
    "check_device",
    "choose_memory_format",
    "device_fingerprint",
    "fit_overhead",
    "measure_module",
    "measure_network",
    "network_keys",
    "predictor_for",
    "space_keys",
]
