"""Predicting a network's latency from the lookup table: stem + Σ blocks + head + classifier + overhead.

Every block of an arch maps to a :class:`~nas_harness.latency.table.BlockKey`; the blocks are the real modules
of :mod:`nas_harness.model` (``ConvBNAct`` stem and head, ``MBConv``, pool + linear classifier) built at their
input shape and timed in isolation (:func:`~nas_harness.latency.measure.measure_module`).  A block timed alone
runs with its weights and input hot in the caches; inside a network they are not (the sum of entries was
0.83-0.84x the network time at 224 px on this CPU).  So the sum of entries is scaled by a ratio fitted on a few
networks measured end to end in the same input size / batch context (:func:`fit_overhead`); the fit and the
networks behind it are stored in the table.

Entries are measured lazily (only those an arch needs, once: later predictions reuse them) or ahead of time
for a whole space (:func:`space_keys`, ``nas-harness latency --build-table``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas_harness.errors import ConfigError
from nas_harness.latency.config import LatencySettings
from nas_harness.latency.measure import Measurement, choose_memory_format, measure_interleaved, network_module
from nas_harness.latency.table import BlockKey, Entry, Fingerprint, LatencyTable, device_fingerprint, load_average, now

#: Networks measured end to end for the overhead fit when a table is filled lazily.
LAZY_FIT_NETWORKS = 4


def _out(size: int, kernel: int, stride: int) -> int:
    pad = (kernel - 1) // 2
    return (size + 2 * pad - kernel) // stride + 1


def network_keys(arch: Any, settings: LatencySettings) -> list[BlockKey]:
    """The table keys of ``arch``'s deployed network in execution order (a repeated block appears each time)."""
    b, act = settings.batch, arch.act
    size = settings.resolution
    keys = [BlockKey("stem", settings.in_channels, arch.stem_channels, size, b, kernel=3, stride=arch.stem_stride,
                     act=act)]
    size = _out(size, 3, arch.stem_stride)
    cin = arch.stem_channels
    for st in arch.stages:
        for i in range(st.repeats):
            stride = st.stride if i == 0 else 1
            keys.append(BlockKey("mbconv", cin, st.channels, size, b, kernel=st.kernel, stride=stride,
                                 expand=st.expand, se=st.se, residual=st.skip and stride == 1 and cin == st.channels,
                                 act=act))
            size = _out(size, st.kernel, stride)
            cin = st.channels
    keys.append(BlockKey("head", cin, arch.head_channels, size, b, act=act))
    keys.append(BlockKey("classifier", arch.head_channels, settings.num_classes, size, b))
    return keys


def space_keys(space: Any, settings: LatencySettings) -> list[BlockKey]:
    """Every key some member of ``space`` (a :class:`~nas_harness.space.SearchSpace`) needs, each once.

    The spatial size at each stage is fixed by the strides; a stage's first block sees any of the previous
    stage's widths, its later blocks (if any repeat count > 1 is allowed) their own width.
    """
    from nas_harness.arch import make_divisible

    base = space.base
    b, act = settings.batch, base.act
    size = settings.resolution
    keys = [BlockKey("stem", settings.in_channels, base.stem_channels, size, b, kernel=3, stride=base.stem_stride,
                     act=act)]
    size = _out(size, 3, base.stem_stride)
    cins = [base.stem_channels]
    se_choices = {True: space.se_ratio, False: None}
    for base_st, sc in zip(base.stages, space.stages):
        couts = sorted({make_divisible(base_st.channels * w) for w in sc.widths})
        for k in sc.kernels:
            out_size = _out(size, k, base_st.stride)
            for e in sc.expands:
                for se in sc.se:
                    for cout in couts:
                        for cin in cins:
                            res = base_st.skip and base_st.stride == 1 and cin == cout
                            keys.append(BlockKey("mbconv", cin, cout, size, b, kernel=k, stride=base_st.stride,
                                                 expand=e, se=se_choices[se], residual=res, act=act))
                        if max(sc.repeats) > 1:
                            keys.append(BlockKey("mbconv", cout, cout, out_size, b, kernel=k, stride=1, expand=e,
                                                 se=se_choices[se], residual=base_st.skip, act=act))
        size = _out(size, 3, base_st.stride)  # the output size does not depend on the (odd) kernel
        cins = couts
    keys += [BlockKey("head", cin, base.head_channels, size, b, act=act) for cin in cins]
    keys.append(BlockKey("classifier", base.head_channels, settings.num_classes, size, b))
    return list(dict.fromkeys(keys))


class Classifier(nn.Module):
    """The network's tail as ``EfficientNet.forward`` runs it: global average pool, flatten, (dropout,) linear."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(self.avgpool(x), 1))


def block_module(key: BlockKey) -> tuple[nn.Module, tuple[int, ...]]:
    """The module a key stands for (the real classes of :mod:`nas_harness.model`) and its input shape."""
    from nas_harness.model import ConvBNAct, MBConv, act_factory

    shape = (key.batch, key.cin, key.size, key.size)
    act = act_factory(key.act)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if key.kind == "stem":
            return ConvBNAct(key.cin, key.cout, key.kernel, key.stride, act_layer=act), shape
        if key.kind == "head":
            return ConvBNAct(key.cin, key.cout, 1, act_layer=act), shape
        if key.kind == "mbconv":
            return MBConv(key.cin, key.cout, key.kernel, key.stride, key.expand, key.se, skip=key.residual,
                          act_layer=act), shape
        return Classifier(key.cin, key.cout), shape


@dataclass(frozen=True)
class Prediction:
    """A predicted latency: ``total_ms = blocks_ms + overhead_ms``; ``parts`` are (key, ms) in network order."""

    total_ms: float
    blocks_ms: float
    overhead_ms: float
    parts: tuple[tuple[str, float], ...]
    fitted: bool

    def by_kind(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, ms in self.parts:
            kind = key.split("_", 1)[0]
            out[kind] = out.get(kind, 0.0) + ms
        return out


def fit_overhead(networks: list[dict[str, Any]]) -> dict[str, Any]:
    """The network/blocks ratio: ``measured ≈ slope × sum of entries``, slope = the median of the networks'
    ratios (``intercept_ms`` is 0; it is kept in the fit so a table can hold an affine correction).

    Why a median ratio and not a least-squares line: on a shared machine a network measurement can land in a
    slow phase, and a line through 8-12 noisy points swings its slope and intercept widely between table builds
    (measured here: slope 1.38 / intercept -2.8 ms in one build, 0.96 / +2.3 ms in the next), while the median
    ratio of blocks-sum to network time stayed within a few percent (0.83 and 0.84 over 60 archs)."""
    ratios = sorted(float(n["measured_ms"]) / float(n["sum_ms"]) for n in networks if float(n["sum_ms"]) > 0)
    if not ratios:
        raise ConfigError("latency fit: no measured networks")
    mid = len(ratios) // 2
    slope = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
    rel = sorted(abs(slope * float(n["sum_ms"]) - float(n["measured_ms"])) / float(n["measured_ms"])
                 for n in networks if float(n["measured_ms"]) > 0)
    return {"model": "ratio", "intercept_ms": 0.0, "slope": slope, "n_networks": len(networks),
            "median_abs_rel_err": rel[len(rel) // 2] if rel else None, "fitted_at": now(), "networks": networks}


class LatencyPredictor:
    """Predicts (and, where the table lacks entries, measures) latencies for one :class:`LatencySettings`.

    ``table``: an open table (tests, benchmarks) instead of the settings' file.  ``measured`` counts the block
    entries this predictor measured, ``networks_measured`` the networks it timed end to end.
    """

    def __init__(self, settings: LatencySettings, table: LatencyTable | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self._table = table
        self._fingerprint: Fingerprint | None = table.fingerprint if table is not None else None
        self.measured = 0
        self.networks_measured = 0
        self.log = log or (lambda msg: None)

    # --- the table -------------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> Fingerprint:
        if self._fingerprint is None:
            self._fingerprint = device_fingerprint(self.settings.device, self.settings.threads)
        return self._fingerprint

    @property
    def table(self) -> LatencyTable:
        if self._table is None:
            self._table = LatencyTable.open(self.settings.table_path(self.fingerprint.id), self.fingerprint)
        return self._table

    def _memory_format(self, table: LatencyTable) -> str:
        """The table's memory format, chosen now (under the table lock) if it has none yet."""
        wanted = self.settings.memory_format
        if table.memory_format is None:
            fmt, trial = choose_memory_format(self.settings)
            table.memory_format, table.memory_format_trial = fmt, trial
            if trial:
                self.log(f"latency: memory format {fmt} ("
                         + ", ".join(f"{k} {v:.3g} ms" for k, v in trial.items()) + " on EfficientNet-B0)")
        elif wanted != "auto" and wanted != table.memory_format:
            raise ConfigError(f"latency.memory_format = {wanted!r} but the table {str(table.path)!r} was measured in "
                              f"{table.memory_format!r}; use 'auto' or another table")
        return table.memory_format

    # --- entries ---------------------------------------------------------------------------------------
    def keys(self, arch: Any) -> list[BlockKey]:
        return network_keys(arch, self.settings)

    def fill(self, keys: Iterable[BlockKey], progress: Callable[[int, int], None] | None = None) -> int:
        """Measure the keys the table lacks (under the table lock; other writers' entries are merged, not lost,
        and not measured twice).  Returns how many were measured."""
        keys = list(keys)
        if not self.table.missing(keys):
            return 0
        before = self.measured
        self.build(keys, progress=progress)
        return self.measured - before

    def predict(self, arch: Any, fill: bool = True) -> Prediction:
        """The predicted latency of ``arch`` (measuring missing entries first unless ``fill=False``)."""
        keys = self.keys(arch)
        missing = self.table.missing(keys)
        if missing and fill:
            self.fill(missing)
        elif missing:
            raise ConfigError(f"latency table {str(self.table.path)!r} lacks {len(missing)} entr"
                              f"{'y' if len(missing) == 1 else 'ies'} for this arch (e.g. {missing[0]}); fill it "
                              "with 'nas-harness latency --build-table STUDY.toml' or predict with filling on")
        parts = tuple((str(k), self.table.entries[str(k)].ms) for k in keys)
        blocks = sum(ms for _, ms in parts)
        fit = self.table.fits.get(self.settings.context)
        total = fit["intercept_ms"] + fit["slope"] * blocks if fit else blocks
        return Prediction(total_ms=total, blocks_ms=blocks, overhead_ms=total - blocks, parts=parts,
                          fitted=fit is not None)

    # --- whole networks and the overhead fit ---------------------------------------------------------------
    def measure(self, arch: Any) -> Measurement:
        """The end-to-end latency of ``arch``, measured now (in the table's memory format)."""
        return self.measure_many([arch])[0]

    def measure_many(self, archs: list[Any], progress: Callable[[int, int], None] | None = None
                     ) -> list[Measurement]:
        """End-to-end latencies of several archs, measured now in interleaved rounds."""
        if self.table.memory_format is None:
            with self.table.locked() as table:
                self._memory_format(table)
                table.save()
        self.networks_measured += len(archs)
        return measure_interleaved([lambda a=a: network_module(a, self.settings) for a in archs], self.settings,
                                   self.table.memory_format or "channels_last", progress)

    def fit(self, archs: Iterable[Any], keep: bool = True) -> dict[str, Any]:
        """Measure ``archs`` end to end, (re)fit the overhead of this context with them (and, if ``keep``, the
        networks an earlier fit used), store the fit in the table and return it."""
        fit, _ = self.build([], fit_archs=archs, keep=keep)
        assert fit is not None
        return fit

    def build(self, keys: Iterable[BlockKey], fit_archs: Iterable[Any] = (), extra_archs: Iterable[Any] = (),
              keep: bool = True, progress: Callable[[int, int], None] | None = None
              ) -> tuple[dict[str, Any] | None, list[Measurement]]:
        """One set of interleaved rounds over: the entries of ``keys`` (and of every arch given) that the table
        lacks, the networks ``fit_archs`` (the overhead fit of this context is redone with them, plus the earlier
        fit's networks if ``keep``) and ``extra_archs``, measured end to end.  Measuring everything in the same
        rounds keeps a machine whose speed drifts over minutes from skewing the fit.  Returns the fit (None
        without ``fit_archs``) and the measurements of ``extra_archs``."""
        fit_archs, extra = list(fit_archs), list(extra_archs)
        keys = list(keys) + [k for a in fit_archs + extra for k in self.keys(a)]
        ctx = self.settings.context
        with self.table.locked() as table:
            todo = table.missing(keys)
            old = (table.fits.get(ctx) or {}).get("networks", []) if keep else []
            seen = {n["arch"] for n in old}
            new_fit = [a for a in {str(a): a for a in fit_archs}.values() if str(a) not in seen]
            items = [lambda k=k: block_module(k) for k in todo]
            items += [lambda a=a: network_module(a, self.settings) for a in new_fit + extra]
            found = (measure_interleaved(items, self.settings, self._memory_format(table), progress)
                     if items else [])
            for key, m in zip(todo, found):
                table.entries[str(key)] = Entry(m.median_ms, m.iqr_ms, m.repeats, now(), load_average(),
                                                len(m.round_medians_ms))
            self.measured += len(todo)
            self.networks_measured += len(new_fit) + len(extra)
            fit = None
            if fit_archs:
                networks = list(old)
                for arch, m in zip(new_fit, found[len(todo):]):
                    networks.append({"arch": str(arch), "measured_ms": m.median_ms, "iqr_ms": m.iqr_ms,
                                     "sum_ms": self.predict(arch, fill=False).blocks_ms, "at": now(),
                                     "load": load_average()})
                fit = table.fits[ctx] = fit_overhead(networks)
            if todo or fit_archs:
                table.save()
        return fit, found[len(todo) + len(new_fit):]

    def ensure_fit(self, sample: Callable[[random.Random], Any], networks: int = LAZY_FIT_NETWORKS,
                   seed: int = 0) -> dict[str, Any] | None:
        """Fit the overhead of this context on ``networks`` archs drawn with ``sample(rng)`` unless the table
        already has a fit with at least that many networks (another worker's fit is reused)."""
        fit = self.table.fits.get(self.settings.context)
        if fit is not None and fit.get("n_networks", 0) >= networks:
            return fit
        with self.table.locked() as table:  # one worker fits; the others wait and reuse its fit
            fit = table.fits.get(self.settings.context)
            if fit is not None and fit.get("n_networks", 0) >= networks:
                return fit
            rng = random.Random(seed)
            have = {n["arch"] for n in (fit or {}).get("networks", [])}
            archs: list[Any] = []
            for _ in range(20 * networks):
                if len(archs) + len(have) >= networks:
                    break
                a = sample(rng)
                if str(a) not in have and all(str(a) != str(b) for b in archs):
                    archs.append(a)
            t0 = time.perf_counter()
            fit = self.fit(archs)
            self.log(f"latency: overhead fitted on {fit['n_networks']} networks in {time.perf_counter() - t0:.1f} s "
                     f"(network = {fit['slope']:.3f} x sum of entries)")
            return fit


_PREDICTORS: dict[LatencySettings, LatencyPredictor] = {}


def predictor_for(settings: LatencySettings) -> LatencyPredictor:
    """This process's predictor for ``settings`` (its table stays in memory between trials)."""
    if settings not in _PREDICTORS:
        _PREDICTORS[settings] = LatencyPredictor(settings)
    return _PREDICTORS[settings]
