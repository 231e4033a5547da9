"""The per-device latency lookup table: block keys, the device fingerprint, and the shared JSON file.

A table holds, for ONE device fingerprint (CPU model, ISA and thread count, or GPU name and compute
capability, and the torch version), the measured latency of every block it has seen, keyed by what
determines it (:class:`BlockKey`: block kind, in/out channels, kernel, stride, expansion, SE ratio, residual
add, activation, input size, batch), plus the fitted per-network overhead of each input-size/batch context.

The file is JSON (never pickle), versioned, with the fingerprint inside, so it can be shared and reused by
every study measured on that device.  Several workers may fill one table at once: every write takes a file
lock (``<table>.lock``, ``flock``), re-reads the file, merges its entries in and replaces the file atomically
(temporary file + rename), so no entry is lost and a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas_harness._config import read_file
from nas_harness.arch import ACTIVATIONS
from nas_harness.errors import ConfigError

FORMAT = "nas-harness latency table"
VERSION = 1
#: Largest table file read (a full default space is a few hundred entries, ~100 KB).
MAX_TABLE_BYTES = 64 << 20
KINDS = ("stem", "mbconv", "head", "classifier")


# ------------------------------------------------------------------------------------------- fingerprint

def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


@dataclass(frozen=True)
class Fingerprint:
    """What a latency figure is valid for: the device and the software that ran it."""

    device: str  # 'cpu' | 'cuda'
    name: str  # CPU model / GPU name
    capability: str  # CPU ISA level torch dispatches to (e.g. AVX512) / CUDA compute capability (e.g. sm_90)
    threads: int | None  # intra-op threads (CPU only)
    torch: str
    cuda: str | None = None  # CUDA runtime of the torch build (CUDA only)

    @property
    def id(self) -> str:
        """A file-name-safe id: readable parts plus a short hash of all of them."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")[:40] or "device"
        parts = [self.device, slug, self.capability.lower()]
        if self.threads is not None:
            parts.append(f"t{self.threads}")
        parts.append("torch" + re.sub(r"[^A-Za-z0-9.]+", "-", self.torch))
        digest = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        return "-".join([*parts, digest])

    def __str__(self) -> str:
        where = (f"{self.threads} thread{'s' if self.threads != 1 else ''}" if self.device == "cpu"
                 else f"CUDA {self.cuda}")
        return f"{self.device} {self.name!r} {self.capability}, {where}, torch {self.torch}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> Fingerprint:
        if not isinstance(d, Mapping):
            raise TypeError("fingerprint: expected a table")
        names = {f.name for f in dataclasses.fields(cls)}
        if set(d) - names or not {"device", "name", "capability", "threads", "torch"} <= set(d):
            raise TypeError(f"fingerprint: expected keys {sorted(names)}, got {sorted(d)}")
        return cls(**{k: d[k] for k in names if k in d})


def device_fingerprint(device: str, threads: int | None = 1) -> Fingerprint:
    """The fingerprint of ``device`` ('cpu' with ``threads``, or 'cuda:N') on this machine."""
    import torch

    from nas_harness.latency.config import check_device

    dev = check_device(device)
    if dev == "cpu":
        capability = str(torch.backends.cpu.get_cpu_capability())
        return Fingerprint("cpu", _cpu_name(), capability, int(threads or 1), torch.__version__)
    index = int(dev.split(":")[1])
    major, minor = torch.cuda.get_device_capability(index)
    return Fingerprint("cuda", torch.cuda.get_device_name(index), f"sm_{major}{minor}", None, torch.__version__,
                       str(torch.version.cuda))


# ------------------------------------------------------------------------------------------------- keys

_KEY_TOKEN = re.compile(r"^(se|res|i|o|k|s|e|r|b)(.+)\Z")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass(frozen=True)
class BlockKey:
    """What one block's latency depends on.  ``size`` is the block's input height = width (px)."""

    kind: str
    cin: int
    cout: int
    size: int
    batch: int = 1
    kernel: int = 1
    stride: int = 1
    expand: float = 1.0
    se: float | None = None
    residual: bool = False
    act: str = "silu"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"latency key: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.act not in ACTIVATIONS:
            raise ConfigError(f"latency key: activation {self.act!r} is not one of {', '.join(ACTIVATIONS)}")
        object.__setattr__(self, "expand", float(self.expand))
        if self.se is not None:
            object.__setattr__(self, "se", float(self.se))

    def __str__(self) -> str:
        if self.kind == "stem":
            mid = f"_k{self.kernel}_s{self.stride}_{self.act}"
        elif self.kind == "mbconv":
            mid = (f"_k{self.kernel}_s{self.stride}_e{_num(self.expand)}_se{_num(self.se or 0)}"
                   f"_res{int(self.residual)}_{self.act}")
        elif self.kind == "head":
            mid = f"_{self.act}"
        else:
            mid = ""
        return f"{self.kind}_i{self.cin}_o{self.cout}{mid}_r{self.size}_b{self.batch}"

    @classmethod
    def parse(cls, text: str) -> BlockKey:
        """Inverse of ``str(key)``; a malformed key is a ValueError."""
        kind, *tokens = str(text).split("_")
        values: dict[str, Any] = {"kind": kind}
        names = {"i": "cin", "o": "cout", "k": "kernel", "s": "stride", "e": "expand", "se": "se",
                 "res": "residual", "r": "size", "b": "batch"}
        for tok in tokens:
            m = _KEY_TOKEN.match(tok)
            if tok in ACTIVATIONS or m is None:
                values["act"] = tok
                continue
            name, raw = names[m.group(1)], m.group(2)
            if name == "expand":
                values[name] = float(raw)
            elif name == "se":
                values[name] = float(raw) or None
            elif name == "residual":
                values[name] = raw == "1"
            else:
                if not raw.isdecimal() or int(raw) < 1:
                    raise ValueError(f"latency key {text!r}: {m.group(1)} must be a positive integer")
                values[name] = int(raw)
        key = cls(**values)
        if str(key) != text:
            raise ValueError(f"latency key {text!r} is not in canonical form ({key})")
        return key


# ------------------------------------------------------------------------------------------------ table

@dataclass(frozen=True)
class Entry:
    """One measured block: median and IQR (ms) of its fastest round, repeats per round, when, the 1-minute load
    average then, and the number of rounds."""

    ms: float
    iqr_ms: float
    repeats: int
    at: str = ""
    load: float | None = None
    rounds: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: Any) -> Entry:
        if not isinstance(d, Mapping):
            raise TypeError("entry: expected a table")
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"entry: unknown key {unknown[0]!r}")
        load = d.get("load")
        return cls(ms=_number(d, "ms", 0.0, MAX_MS, open_low=True), iqr_ms=_number(d, "iqr_ms", 0.0, MAX_MS, 0.0),
                   repeats=int(_number(d, "repeats", 0, 10**9, 0, integer=True)), at=str(d.get("at", "")),
                   load=None if load is None else _number(d, "load", 0.0, 1e6),
                   rounds=int(_number(d, "rounds", 1, 10**6, 1, integer=True)))


_MISSING = object()


def _number(d: Mapping[str, Any], key: str, lo: float, hi: float, default: Any = _MISSING, *,
            open_low: bool = False, integer: bool = False) -> float:
    """``d[key]`` as a real number (JSON number, not a string or a boolean) in [lo, hi] (or (lo, hi])."""
    v = d.get(key, default)
    if v is _MISSING:
        raise KeyError(f"{key} is missing")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not float(v).is_integer()):
        raise TypeError(f"{key} must be {'an integer' if integer else 'a number'}, got {v!r}")
    if not (lo < v <= hi if open_low else lo <= v <= hi):  # NaN fails both
        raise ValueError(f"{key} must be {'>' if open_low else '>='} {lo:g} and <= {hi:g}, got {v!r}")
    return float(v)


#: The largest latency a table may hold (ms): about 2.8 hours, far beyond any network's forward pass.
MAX_MS = 1e7
#: The network/blocks ratio of a fit must lie within (0, MAX_SLOPE].
MAX_SLOPE = 1e3


_CONTEXT = re.compile(r"^r[1-9]\d*_b[1-9]\d*_c[1-9]\d*_i[1-9]\d*\Z")


def _context_key(key: Any) -> str:
    """A fit's key: the input size, batch, classes and channels it was fitted for (``r224_b1_c1000_i3``)."""
    if not isinstance(key, str) or not _CONTEXT.match(key):
        raise ValueError(f"fit key {key!r}: expected r<size>_b<batch>_c<classes>_i<channels>")
    return key


def check_fit(d: Any) -> dict[str, Any]:
    """A stored overhead fit (see :func:`nas_harness.latency.predictor.fit_overhead`): ``model`` 'ratio' or
    'affine', ``slope`` in (0, MAX_SLOPE], ``intercept_ms`` in [0, MAX_MS] (so no prediction can be zero or
    negative), the networks behind it with real numbers; anything else is a ValueError/TypeError naming the key."""
    if not isinstance(d, Mapping):
        raise TypeError("fit: expected a table")
    if d.get("model", "ratio") not in ("ratio", "affine"):
        raise ValueError(f"fit: model must be 'ratio' or 'affine', got {d.get('model')!r}")
    _number(d, "slope", 0.0, MAX_SLOPE, open_low=True)
    _number(d, "intercept_ms", 0.0, MAX_MS)
    networks = d.get("networks", [])
    if not isinstance(networks, list) or not all(isinstance(n, Mapping) for n in networks):
        raise TypeError("fit: networks must be a list of tables")
    for n in networks:
        for key in ("measured_ms", "sum_ms"):
            if key in n:
                _number(n, key, 0.0, MAX_MS)
    return dict(d)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


@dataclass
class LatencyTable:
    """A table in memory (see the module docstring).  ``path`` None: never saved (tests, throw-away runs)."""

    fingerprint: Fingerprint
    path: Path | None = None
    memory_format: str | None = None
    memory_format_trial: dict[str, float] = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)
    fits: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: str = field(default_factory=now)
    _lock_depth: int = field(default=0, repr=False, compare=False)

    # --- reading ---------------------------------------------------------------------------------------
    def get(self, key: BlockKey | str) -> Entry | None:
        return self.entries.get(str(key))

    def __contains__(self, key: object) -> bool:
        return str(key) in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def missing(self, keys: list[BlockKey]) -> list[BlockKey]:
        """Keys not in the table, each once, in first-seen order."""
        return list(dict.fromkeys(k for k in keys if str(k) not in self.entries))

    # --- JSON ------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "fingerprint": self.fingerprint.to_dict(),
                "fingerprint_id": self.fingerprint.id, "created": self.created, "updated": now(),
                "memory_format": self.memory_format, "memory_format_trial": dict(self.memory_format_trial),
                "fits": {k: self.fits[k] for k in sorted(self.fits)},
                "entries": {k: self.entries[k].to_dict() for k in sorted(self.entries)}}

    @classmethod
    def from_json(cls, d: Any, path: Path | None = None) -> LatencyTable:
        """Parse a table document; any structural problem is a ValueError/TypeError/KeyError."""
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            raise ValueError(f"not a latency table (expected \"format\": {FORMAT!r})")
        if d.get("version") != VERSION:
            raise ValueError(f"table format version {d.get('version')!r}, this code reads version {VERSION}")
        fp = Fingerprint.from_dict(d["fingerprint"])
        if d.get("fingerprint_id", fp.id) != fp.id:
            raise ValueError(f"fingerprint_id {d.get('fingerprint_id')!r} does not match its fingerprint ({fp.id})")
        entries_raw, fits = d.get("entries", {}), d.get("fits", {})
        if not isinstance(entries_raw, Mapping) or not isinstance(fits, Mapping):
            raise TypeError("entries and fits must be tables")
        entries = {}
        for k, v in entries_raw.items():
            BlockKey.parse(k)
            entries[k] = Entry.from_dict(v)
        fmt = d.get("memory_format")
        if fmt not in (None, "channels_last", "contiguous"):
            raise ValueError(f"memory_format {fmt!r}")
        trial = d.get("memory_format_trial") or {}
        return cls(fingerprint=fp, path=path, memory_format=fmt,
                   memory_format_trial={str(k): float(v) for k, v in trial.items()}, entries=entries,
                   fits={_context_key(k): check_fit(v) for k, v in fits.items()}, created=str(d.get("created", "")))

    @classmethod
    def read(cls, path: str | Path) -> LatencyTable:
        """Load a table file; a damaged one is ONE ConfigError line naming the file."""
        p = Path(path)
        raw = read_file(p, MAX_TABLE_BYTES, f"latency table {str(p)!r}", what="a latency table")
        try:
            doc = json.loads(raw.decode("utf-8"))
            return cls.from_json(doc, p)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError, ConfigError) as exc:
            detail = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise ConfigError(f"latency table {str(p)!r} is damaged ({type(exc).__name__}: {detail}); delete it "
                              "or rebuild it with 'nas-harness latency --build-table STUDY.toml'") from None

    @classmethod
    def open(cls, path: str | Path | None, fingerprint: Fingerprint) -> LatencyTable:
        """The table at ``path`` for ``fingerprint``: loaded if the file exists (and refused if it was measured on
        another device), else a new empty one that will be created there on the first save."""
        if path is None:
            return cls(fingerprint)
        p = Path(path)
        if not p.exists():
            return cls(fingerprint, p)
        table = cls.read(p)
        table.check(fingerprint)
        return table

    def check(self, fingerprint: Fingerprint) -> None:
        if self.fingerprint != fingerprint:
            raise ConfigError(f"latency table {str(self.path)!r} was measured on {self.fingerprint} but this run "
                              f"measures on {fingerprint}; a table is valid for one device only: use that "
                              "device's own file (the default folder keeps one per device) or another path")

    # --- writing ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[LatencyTable]:
        """Hold the table's file lock, with the in-memory table refreshed from the file (merged); re-entrant."""
        if self.path is None or self._lock_depth:
            self._lock_depth += 1
            try:
                yield self
            finally:
                self._lock_depth -= 1
            return
        import fcntl

        from nas_harness._config import open_lock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        with open_lock(lock, f"latency table lock {str(lock)!r}") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            self._lock_depth += 1
            try:
                self.refresh()
                yield self
            finally:
                self._lock_depth -= 1
                fcntl.flock(fh, fcntl.LOCK_UN)

    def refresh(self) -> None:
        """Merge in what other writers saved (their entries, fits and memory format)."""
        if self.path is None or not self.path.exists():
            return
        disk = LatencyTable.read(self.path)
        disk.check(self.fingerprint)
        for k, v in disk.entries.items():
            self.entries.setdefault(k, v)
        for k, v in disk.fits.items():
            self.fits.setdefault(k, v)
        if disk.memory_format is not None:
            if self.memory_format not in (None, disk.memory_format):
                raise ConfigError(f"latency table {str(self.path)!r}: measured in {disk.memory_format}, this run "
                                  f"uses {self.memory_format}")
            self.memory_format = disk.memory_format
            self.memory_format_trial = disk.memory_format_trial or self.memory_format_trial
        self.created = disk.created or self.created

    def save(self) -> None:
        """Write atomically (temporary file + rename); call inside :meth:`locked` when others may write."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o644)  # a table is meant to be shared; mkstemp's 0600 would hide it from other users
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(self.to_json(), f, indent=1, sort_keys=False)
                f.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
