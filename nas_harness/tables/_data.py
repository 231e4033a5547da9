"""Benchmark tables: architectures with recorded accuracies and costs, looked up by canonical arch string.

:func:`accel_nasbench` loads the packaged Accel-NASBench table (5,138 records of the EfficientNet-B0 7-stage
space, ImageNet-1k top-1 after the benchmark's reduced training proxy; see ``data/NOTICE``).  Each record maps
to our :class:`~nas_harness.arch.Arch`: B0's stem (32), strides (1, 2, 2, 2, 1, 2, 1), output channels (16,
24, 40, 80, 112, 192, 320) and head (1280), with the record's expansion, kernel, layers and SE (ratio 0.25 of
the block input) per stage; expansion-1 stages are ``ds`` blocks.  Our analytic parameter count equals the
record's ``params`` on every record, thop's MAC convention (:func:`nas_harness.flops.count_macs`) its
``macs`` (``tests/tables``).

13 architectures were trained twice in the published data (record ids 0-13 except 9, and 443-455; top-1
differences up to 1.3 pp, seed noise): a table holds *unique* archs, and an arch recorded more than once gets
the **mean** of its records' accuracies (its record ids are kept).  Costs are identical across such repeats
except throughput/latency, which are averaged the same way.  A missing measurement (throughput on TPUs for a
few dozen records) is NaN.

:func:`table_from_records` makes the same kind of table from one's own finished studies (a recorded table).
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas_harness.arch import Arch, Stage, parse_arch
from nas_harness.errors import ConfigError
from nas_harness.presets import efficientnet_b0
from nas_harness.space import SearchSpace, StageChoices

DATA_FILE = Path(__file__).with_name("data") / "accel_nasbench.json.gz"
#: sha256 of the packaged file (the one ``python -m nas_harness.tables._source`` writes from the tarball).
DATA_SHA256 = "b0f600cc72086d8c1dc8d03d64a94d4dd0ad67e7b2e463d95652ca08653a2992"
#: Accel-NASBench's cost columns: mean throughput (images/s, higher is better) and latency (ms) per platform.
PERF_COLUMNS = ("throughput_tpuv2", "throughput_tpuv3", "throughput_a100", "throughput_3090",
                "throughput_zcu102", "throughput_vck190", "latency_zcu102", "latency_vck190")
#: ImageNet-1k validation images (the split size behind every Accel-NASBench accuracy).
IMAGENET_VAL_N = 50_000
_ANB_REPEATS = ((1, 2, 3),) * 5 + ((1, 2, 3, 4),) + ((1, 2, 3),)


def accel_nasbench_space() -> SearchSpace:
    """The space Accel-NASBench samples: B0's 7 stages, kernel 3/5, expansion 1/4/6, SE on/off, layers 1-3
    (stage 6: 1-4); 28 choices, 36^6 * 48 ≈ 1.04e11 archs.  Its study-file form is
    ``studies/accel_nasbench.toml``."""
    return SearchSpace(efficientnet_b0(), [StageChoices(kernels=(3, 5), expands=(1, 4, 6), se=(True, False),
                                                        repeats=r, widths=(1.0,)) for r in _ANB_REPEATS])


def record_arch(choices: str, b0: Arch | None = None) -> Arch:
    """The arch of an Accel-NASBench record from its 28 choice digits (expansion, kernel, layers, SE per stage);
    ``b0``: :func:`~nas_harness.presets.efficientnet_b0` when the caller has it already."""
    b0 = b0 or efficientnet_b0()
    if len(choices) != 4 * len(b0.stages) or not choices.isdigit():
        raise ConfigError(f"record choices {choices!r}: expected {4 * len(b0.stages)} digits")
    stages = []
    for i, base in enumerate(b0.stages):
        e, k, layers, se = (int(c) for c in choices[4 * i: 4 * i + 4])
        stages.append(Stage(repeats=layers, kernel=k, stride=base.stride, expand=e, channels=base.channels,
                            se=0.25 if se else None))
    return b0.replace(stages=tuple(stages))


def arch_features(arch: Arch) -> tuple[float, ...]:
    """Per stage (kernel, expansion, SE on, repeats, channels): the surrogate's inputs and the coordinates of the
    nearest-record rule (Hamming distance counts differing entries)."""
    out: list[float] = []
    for st in arch.stages:
        out += [st.kernel, float(st.expand), float(st.se is not None), st.repeats, st.channels]
    return tuple(out)


@dataclass(frozen=True)
class BenchmarkTable:
    """Unique archs with their accuracy (fraction) and cost columns.

    ``archs``: canonical arch strings (N); ``val_acc``: shape (N,) in [0, 1]; ``columns``: name -> shape (N,)
    float arrays (``params`` and ``macs`` exact integers as floats; NaN where unmeasured); ``record_ids``: the
    source records behind each arch; ``val_n``: the split size behind the accuracies; ``name`` and ``source``
    for reports.
    """

    name: str
    archs: tuple[str, ...]
    val_acc: np.ndarray
    columns: Mapping[str, np.ndarray]
    record_ids: tuple[tuple[int, ...], ...]
    val_n: int | None = None
    source: str = ""
    mac_convention: str = "fvcore"
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self._index:
            self._index.update({a: i for i, a in enumerate(self.archs)})
        if len(self._index) != len(self.archs):
            raise ConfigError(f"{self.name}: duplicate arch strings in the table")

    def __len__(self) -> int:
        return len(self.archs)

    def index(self, arch: Arch | str) -> int | None:
        """Row of ``arch`` (by canonical string), or None when the table does not hold it."""
        return self._index.get(str(arch))

    def row(self, i: int) -> dict[str, Any]:
        """Everything recorded about row ``i``: arch, val_acc, record ids and each column (None if NaN)."""
        out: dict[str, Any] = {"arch": self.archs[i], "val_acc": float(self.val_acc[i]),
                               "record_ids": list(self.record_ids[i])}
        for name, col in self.columns.items():
            v = float(col[i])
            out[name] = None if np.isnan(v) else v
        return out

    @functools.cached_property
    def features(self) -> np.ndarray:
        """Shape (N, 5 * stages): :func:`arch_features` of every arch."""
        return np.array([arch_features(parse_arch(a)) for a in self.archs], dtype=float)

    def best(self) -> tuple[int, float]:
        """(row, val_acc) of the table's optimum (first row among equals)."""
        i = int(np.argmax(self.val_acc))
        return i, float(self.val_acc[i])


@functools.cache
def _published() -> dict[str, Any]:
    """The packaged file as read (gzip JSON; no code runs)."""
    return json.loads(gzip.decompress(DATA_FILE.read_bytes()))


def records_with(column: str | None = None) -> int:
    """How many unique archs of the packaged table have a measurement in ``column`` (a :data:`PERF_COLUMNS` name,
    ``macs_thop``, or None for all), from the file alone (fast: no table is built)."""
    doc = _published()
    at = {c: i for i, c in enumerate(doc["columns"])}
    raw = {"macs_thop": "macs_m"}.get(column or "", column)
    have = {r[at["choices"]] for r in doc["rows"] if raw is None or r[at[raw]] is not None}
    return len(have)


@functools.cache
def accel_nasbench() -> BenchmarkTable:
    """The packaged Accel-NASBench table (5,125 unique archs from 5,138 records; cached per process).

    ``val_acc`` is ``val_top1 / 100``; columns: ``params`` (exact count), ``macs_thop`` (the records' ``macs``,
    thop's convention), ``macs`` (fvcore's convention, analytic, as every study records) and
    :data:`PERF_COLUMNS`.  Reads gzip JSON only (no code runs).
    """
    doc = _published()
    cols = doc["columns"]
    at = {c: i for i, c in enumerate(cols)}
    groups: dict[str, list[list[Any]]] = {}
    for row in doc["rows"]:
        groups.setdefault(row[at["choices"]], []).append(row)
    from nas_harness.flops import count_macs

    archs, acc, ids = [], [], []
    data: dict[str, list[float]] = {c: [] for c in ("params", "macs", "macs_thop", *PERF_COLUMNS)}
    b0 = efficientnet_b0()
    for choices, rows in groups.items():
        arch = record_arch(choices, b0)
        archs.append(str(arch))
        acc.append(_mean([r[at["val_top1"]] for r in rows]) / 100.0)
        ids.append(tuple(r[at["id"]] for r in rows))
        data["params"].append(float(round(rows[0][at["params_m"]] * 1e6)))
        data["macs_thop"].append(float(round(rows[0][at["macs_m"]] * 1e6)))
        data["macs"].append(float(count_macs(arch).total))
        for c in PERF_COLUMNS:
            vals = [r[at[c]] for r in rows if r[at[c]] is not None]
            data[c].append(_mean(vals) if vals else float("nan"))
    return BenchmarkTable(name="accel_nasbench", archs=tuple(archs), val_acc=np.array(acc),
                          columns={k: np.array(v) for k, v in data.items()}, record_ids=tuple(ids),
                          val_n=IMAGENET_VAL_N, source=doc["source"], mac_convention="thop")


def _mean(values: list[float]) -> float:
    """The mean of one or two recorded values (sum / n, as numpy's mean for so few)."""
    return float(sum(values)) / len(values)


def table_from_records(records: Iterable[Mapping[str, Any]], name: str = "recorded",
                       source: str = "") -> BenchmarkTable:
    """A table from finished trials (mappings with ``arch``, ``val_acc`` and optionally ``macs``, ``params``,
    ``latency_ms``, ``val_n``): one row per arch, the mean accuracy over its trials.  ConfigError when fewer
    than 2 archs have a finite accuracy."""
    acc: dict[str, list[float]] = {}
    cost: dict[str, dict[str, float]] = {}
    val_n: set[int] = set()
    for r in records:
        a, v = r.get("arch"), r.get("val_acc")
        if not a or v is None or not np.isfinite(float(v)):
            continue
        arch = str(parse_arch(str(a)))
        acc.setdefault(arch, []).append(float(v))
        c = cost.setdefault(arch, {})
        for key in ("macs", "params", "latency_ms"):
            if r.get(key) is not None and np.isfinite(float(r[key])):
                c[key] = float(r[key])
        if r.get("val_n"):
            val_n.add(int(r["val_n"]))
    if len(acc) < 2:
        raise ConfigError(f"{name}: {len(acc)} finished trial arch(s) with an accuracy; a table needs at least 2")
    archs = tuple(acc)
    columns = {key: np.array([cost[a].get(key, np.nan) for a in archs], dtype=float)
               for key in ("macs", "params", "latency_ms")}
    return BenchmarkTable(name=name, archs=archs, val_acc=np.array([np.mean(acc[a]) for a in archs]),
                          columns={k: v for k, v in columns.items() if not np.isnan(v).all()},
                          record_ids=tuple(() for _ in archs), val_n=val_n.pop() if len(val_n) == 1 else None,
                          source=source)


def check_space(table: BenchmarkTable, space: SearchSpace | None) -> None:
    """ConfigError naming the first table arch outside ``space`` (a table study must search the table's space)."""
    if space is None:
        return
    for a in table.archs:
        arch = parse_arch(a)
        if arch not in space:
            raise ConfigError(f"space: the {table.name} table's arch {a} is outside the study's [space]; use the "
                              f"table's space (studies/accel_nasbench.toml)")


