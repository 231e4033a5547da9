"""CPU kernels in C, compiled on first use with the machine's C compiler and loaded with ``ctypes``.

Why C, and why at run time: the kernels here (``bn_act.c``, ``se.c``, ``depthwise.c``; each file says
what it replaces and why) need no Python or PyTorch headers,
so one ``cc`` call builds them in about a second, for this CPU (``-march=native``), with nothing to
install: PyTorch's own inductor backend compiles its CPU kernels the same way.  The library links the
OpenMP runtime PyTorch already loaded (same soname), so both share one thread pool and
``torch.set_num_threads`` applies to these kernels too.

The build is cached under ``$XDG_CACHE_HOME/nas-harness/native/`` (``~/.cache``), keyed by the source,
the compiler and the CPU, and written atomically, so concurrent processes (Ray workers) never load a
half-written file.  Where there is no compiler, or ``NAS_HARNESS_NATIVE=0`` is set, :func:`library`
returns ``None`` and callers take their stock PyTorch path: results are the same, only slower.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

ENV_VAR = "NAS_HARNESS_NATIVE"
_SOURCES = sorted(Path(__file__).parent.glob("*.c"))
# -fno-trapping-math / -fno-math-errno (as PyTorch itself is built) let GCC if-convert the clamps and
# vectorise; no -ffast-math: NaN and inf must propagate exactly as in the stock kernels.
_FLAGS = ["-O3", "-march=native", "-fno-trapping-math", "-fno-math-errno", "-fopenmp", "-fPIC", "-shared"]

_lock = threading.Lock()
_state: dict[str, object] = {}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nas-harness" / "native"


def _compiler() -> str | None:
    for cand in (os.environ.get("CC"), "gcc", "cc", "clang"):
        if cand and shutil.which(cand):
            return cand
    return None


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return ""


def _build(cc: str) -> Path:
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    texts = [src.read_text() for src in _SOURCES]
    key = hashlib.sha256("\0".join([*texts, cc, version, " ".join(_FLAGS), platform.machine(),
                                    _cpu_flags()]).encode()).hexdigest()[:16]
    out = cache_dir() / f"kernels-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *_FLAGS, "-o", tmp, *map(str, _SOURCES), "-lm"], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{cc} failed: {proc.stderr.strip()[:500]}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


_p, _i64, _f64, _i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
_SIGNATURES = {  # argument types of every exported function (all return void)
    "bn_act_forward_train": [_p, _p, _i64, _i64, _p, _p, _p, _p, _f64, _f64, _i32, _p, _p],
    "bn_act_forward_eval": [_p, _p, _i64, _i64, _p, _p, _p, _p, _f64, _i32],
    "bn_act_backward": [_p, _p, _p, _i64, _i64, _p, _p, _p, _p, _i32, _p, _p],
    "se_gate_grad": [_p, _p, _p, _i64, _i64, _i64],
    "se_input_grad": [_p, _p, _p, _p, _i64, _i64, _i64],
    "depthwise_weight_grad": [_p, _p, _p, *[_i64] * 12],
}


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    for name, argtypes in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, None
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None where they cannot be built here (warned once) or are switched off."""
    if os.environ.get(ENV_VAR, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if "lib" in _state:
        return _state["lib"]  # type: ignore[return-value]
    with _lock:
        if "lib" not in _state:
            import torch  # noqa: F401  (its OpenMP runtime must be loaded first, so ours resolves to it)

            lib = None
            cc = _compiler()
            try:
                if cc is None:
                    raise RuntimeError("no C compiler found (set CC)")
                lib = _declare(ctypes.CDLL(str(_build(cc))))
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                warnings.warn(f"nas_harness.native: fused CPU kernels unavailable, using stock PyTorch ops "
                              f"({exc})", RuntimeWarning, stacklevel=2)
            _state["lib"] = lib
    return _state["lib"]  # type: ignore[return-value]


def available() -> bool:
    """Whether the fused CPU kernels are in use in this process."""
    return library() is not None
