"""CPU kernels in C (``native/*.c``), compiled on first use with the machine's C compiler, loaded with
``ctypes``, and called only through the checked wrappers at the end of this module.

Why C, and why at run time: the kernels (``bn_act.c``, ``se.c``, ``depthwise.c``; each file says
what it replaces and why) need no Python or PyTorch headers,
so one ``cc`` call builds them in about a second, for this CPU (``-march=native``), with nothing to
install: PyTorch's own inductor backend compiles its CPU kernels the same way.  The library links the
OpenMP runtime PyTorch already loaded (same soname), so both share one thread pool and
``torch.set_num_threads`` applies to these kernels too.

The build is cached under ``$XDG_CACHE_HOME/nas-harness/native/`` (``~/.cache``), keyed by the source,
the compiler and the CPU, and written atomically, so concurrent processes (Ray workers) never load a
half-written file.  A library is code: one is only loaded from a folder created private (0700) and owned by
this user, never group- or world-writable (nor any folder above it but a sticky one), when the file is owned
by this user, not writable by others, and its SHA-256 equals the one recorded beside it, at build time, by
the process that built it.  Anything else there (a planted library, a changed one) is never loaded: it is
rebuilt, with one warning; an unsafe cache folder is not used at all (the library is built into a private
temporary folder for this process).  The file that was checked is the file that is loaded (by its open file
descriptor).  Where there is no compiler, or ``NAS_HARNESS_NATIVE=0`` is set, :func:`library` returns
``None`` (and :func:`unavailable_reason` says why) and callers take their stock PyTorch path: results are the
same, only slower; any other value of ``NAS_HARNESS_NATIVE`` than 0/1, off/on, false/true, no/yes is refused.

The C functions take raw pointers and trust them: a wrong dtype, layout or size would read or write out
of bounds.  So nothing calls them directly: each has a wrapper here that checks every tensor (type,
float32, CPU, memory layout, shape against the others) and every integer, raises ``TypeError`` or
``ValueError`` naming the argument, allocates the outputs itself, and keeps every tensor alive for the
duration of the call.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch  # before the library is loaded: its OpenMP runtime must be there, so ours resolves to it

from nas_harness.errors import environment_line, no_space_left, os_reason

ENV_VAR = "NAS_HARNESS_NATIVE"
_SOURCES = sorted((Path(__file__).parent / "native").glob("*.c"))
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


def _unsafe_dir(path: Path) -> str | None:
    """Why ``path`` (a folder) could be written by someone other than this user, else None: it, or a folder
    above it without the sticky bit, is group/world-writable, or it is not owned by this user (or root)."""
    me = os.geteuid()
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"{path}: {os_reason(exc)}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a folder"
    if st.st_uid != me or st.st_mode & 0o077:
        return f"{path} is not private to this user (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})"
    for parent in path.resolve().parents:
        try:
            pst = os.stat(parent)
        except OSError as exc:
            return f"{parent}: {os_reason(exc)}"
        if pst.st_uid not in (me, 0):
            return f"{parent} is owned by another user (uid {pst.st_uid})"
        if pst.st_mode & 0o022 and not pst.st_mode & stat.S_ISVTX:
            return f"{parent} is writable by others (mode {stat.S_IMODE(pst.st_mode):o})"
    return None


def _private_dir(path: Path) -> Path:
    """``path`` created 0700 where missing; the same folder if it is safe, else a fresh private temporary one
    (warned): a library is never loaded from a folder others can write."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022:
            os.chmod(path, 0o700)  # readable by others (an older cache): nobody else could write it; make it ours
    why = _unsafe_dir(path)
    if why is None:
        return path
    if "fallback" not in _state:
        _state["fallback"] = Path(tempfile.mkdtemp(prefix="nas-harness-native-"))  # 0700, ours
        atexit.register(shutil.rmtree, _state["fallback"], True)
        warnings.warn(f"nas_harness.kernels: the kernel cache is not used ({why}); building into a private "
                      "temporary folder instead", RuntimeWarning, stacklevel=4)
    return _state["fallback"]  # type: ignore[return-value]


def _digest_path(lib: Path) -> Path:
    return lib.with_name(lib.name + ".sha256")


def _open_verified(lib: Path) -> int | None:
    """An open descriptor of ``lib`` when it is this user's, not writable by others, and its content hashes to
    the SHA-256 recorded by the process that built it; None otherwise (missing, foreign, changed)."""
    try:
        fd = os.open(lib, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise ValueError("not a private regular file")
        dfd = os.open(_digest_path(lib), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            dst = os.fstat(dfd)
            if not stat.S_ISREG(dst.st_mode) or dst.st_uid != os.geteuid() or dst.st_mode & 0o022:
                raise ValueError("digest not private")
            recorded = os.read(dfd, 128).decode("ascii", "replace").strip()
        finally:
            os.close(dfd)
        h = hashlib.sha256()
        with os.fdopen(os.dup(fd), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != recorded:
            raise ValueError("digest mismatch")
        os.lseek(fd, 0, os.SEEK_SET)
        return fd
    except (OSError, ValueError):
        os.close(fd)
        return None


def _library_key(cc: str) -> str:
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    texts = [src.read_text() for src in _SOURCES]
    return hashlib.sha256("\0".join([*texts, cc, version, " ".join(_FLAGS), platform.machine(),
                                     _cpu_flags()]).encode()).hexdigest()[:16]


def _build(cc: str) -> Path:
    """The verified library for this compiler, sources and CPU: the cached one when it checks out, else a new
    build (written atomically, with its SHA-256 beside it)."""
    out = _private_dir(cache_dir()) / f"kernels-{_library_key(cc)}.so"
    fd = _open_verified(out)
    if fd is not None:
        os.close(fd)
        return out
    if out.exists() or out.is_symlink():
        warnings.warn(f"nas_harness.kernels: {out} has no checksum of this user's build (planted, changed, or "
                      "left by an older version); it is not loaded but rebuilt", RuntimeWarning, stacklevel=3)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    dfd, dtmp = tempfile.mkstemp(suffix=".sha256", dir=out.parent)
    try:
        proc = subprocess.run([cc, *_FLAGS, "-o", tmp, *map(str, _SOURCES), "-lm"], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            if os.strerror(errno.ENOSPC) in proc.stderr and no_space_left(tmp):  # the cache's disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out))
            raise RuntimeError(f"{cc} failed: {proc.stderr.strip()[:500]}")
        os.chmod(tmp, 0o700)
        with open(tmp, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        with os.fdopen(dfd, "w") as f:
            dfd = -1
            f.write(digest + "\n")
        os.replace(dtmp, _digest_path(out))  # first the digest: a library without its own digest never loads
        os.replace(tmp, out)
    finally:
        if dfd >= 0:
            os.close(dfd)
        for leftover in (tmp, dtmp):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return out


def _load(path: Path) -> ctypes.CDLL:
    """Load ``path`` through the descriptor that was verified (never re-resolved by name)."""
    fd = _open_verified(path)
    if fd is None:
        raise RuntimeError(f"{path} changed after it was built; not loaded")
    try:
        return ctypes.CDLL(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


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


_OFF, _ON = ("0", "false", "no", "off"), ("", "1", "true", "yes", "on")


def check_setting() -> None:
    """Refuse (one ConfigError line) a value of ``NAS_HARNESS_NATIVE`` that is neither on nor off."""
    value = os.environ.get(ENV_VAR, "1").strip().lower()
    if value not in _OFF + _ON:
        from nas_harness.errors import ConfigError

        raise ConfigError(f"{ENV_VAR}={os.environ.get(ENV_VAR)!r} is not a setting: allowed 0/off/false/no (stock "
                          "PyTorch ops) or 1/on/true/yes (the compiled CPU kernels, the default)")


def _switched_off() -> bool:
    check_setting()
    return os.environ.get(ENV_VAR, "1").strip().lower() in _OFF


def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None where they cannot be built here (warned once) or are switched off."""
    if _switched_off():
        return None
    if "lib" in _state:
        return _state["lib"]  # type: ignore[return-value]
    with _lock:
        if "lib" not in _state:
            lib = None
            cc = _compiler()
            try:
                if cc is None:
                    raise RuntimeError("no C compiler found (set CC)")
                lib = _declare(_load(_build(cc)))
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                why = environment_line(exc) or " ".join(str(exc).split())  # a full disk: worded as everywhere
                _state["error"] = why[:300]
                warnings.warn(f"nas_harness.kernels: CPU kernels unavailable, using stock PyTorch ops: {why}",
                              RuntimeWarning, stacklevel=2)
            _state["lib"] = lib
    return _state["lib"]  # type: ignore[return-value]


def available() -> bool:
    """Whether the compiled CPU kernels can be used in this process (building them on first call)."""
    return library() is not None


def unavailable_reason() -> str | None:
    """None where :func:`available`; otherwise why not (``NAS_HARNESS_NATIVE=0``, no compiler, ...)."""
    if library() is not None:
        return None
    if _switched_off():
        return f"{ENV_VAR}={os.environ.get(ENV_VAR)}"
    return str(_state.get("error", "the C kernels could not be built"))


def _lib() -> ctypes.CDLL:
    lib = library()
    if lib is None:
        raise RuntimeError(f"nas_harness.kernels: the C kernels are unavailable ({unavailable_reason()})")
    return lib


# --- checked entry points ---------------------------------------------------------------------------------
# Every tensor is checked before its pointer goes to C; outputs are allocated here, so they are right by
# construction.  The checks cost 1.5-3 us per tensor (10-15 us per call, measured on a busy 2-core VM); a
# B0-w0.5 training step at 32 px makes 145 calls: 1.5-2 ms of checks in a step of about 290 ms.

ACT_CODES = (0, 1, 2, 3)  # none, SiLU, ReLU, hard-swish: the enum in bn_act.c


def _tensor(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype != torch.float32:
        raise TypeError(f"{name}: expected dtype torch.float32, got {t.dtype}")
    if not t.is_cpu:
        raise ValueError(f"{name}: expected a CPU tensor, got one on {t.device}")
    if t.layout != torch.strided or t.is_neg() or t.is_conj():
        raise ValueError(f"{name}: expected a plain strided tensor")
    return t


def _nhwc(name: str, t: object, shape: tuple[int, ...] | torch.Size | None = None) -> torch.Tensor:
    """A 4-D channels_last-contiguous float32 CPU tensor (of ``shape`` where given), non-empty."""
    t = _tensor(name, t)
    if t.dim() != 4:
        raise ValueError(f"{name}: expected a 4-D (N, C, H, W) tensor, got shape {tuple(t.shape)}")
    if shape is not None and t.shape != shape:
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor, got shape {tuple(t.shape)}")
    if not t.is_contiguous(memory_format=torch.channels_last):
        raise ValueError(f"{name}: expected a channels_last-contiguous tensor (x.contiguous(memory_format="
                         f"torch.channels_last)), got strides {t.stride()}")
    return t


def _dense(name: str, t: object, shape: tuple[int, ...]) -> torch.Tensor:
    """A contiguous float32 CPU tensor of exactly ``shape``."""
    t = _tensor(name, t)
    if t.shape != shape:
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(t.shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{name}: expected a contiguous tensor, got strides {t.stride()}")
    return t


def _act_code(act: object) -> int:
    if isinstance(act, bool) or not isinstance(act, int) or act not in ACT_CODES:
        raise ValueError(f"act: expected an activation code in {ACT_CODES}, got {act!r}")
    return act


def _number(name: str, v: object, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ValueError(f"{name}: expected a number in [{lo}, {hi}], got {v!r}")
    return float(v)


def bn_act_forward_train(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         running_mean: torch.Tensor | None, running_var: torch.Tensor | None, factor: float,
                         eps: float, act: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training-mode ``act(batch_norm(x))`` with batch statistics; updates the running statistics in place
    (with weight ``factor`` for the new batch) when they are given.  Returns (out, mean, invstd)."""
    x = _nhwc("x", x)
    n, c, h, w = x.shape
    m = n * h * w
    if m <= 1:  # the stock module's own error
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
    _dense("weight", weight, (c,))
    _dense("bias", bias, (c,))
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var: give both or neither")
    if running_mean is not None:
        _dense("running_mean", running_mean, (c,))
        _dense("running_var", running_var, (c,))
    factor, eps, code = _number("factor", factor, 0.0, 1.0), _number("eps", eps, 0.0, 1.0), _act_code(act)
    lib = _lib()
    out = torch.empty_like(x, memory_format=torch.channels_last)
    mean, invstd = torch.empty(c), torch.empty(c)
    lib.bn_act_forward_train(x.data_ptr(), out.data_ptr(), m, c, weight.data_ptr(), bias.data_ptr(),
                             None if running_mean is None else running_mean.data_ptr(),
                             None if running_var is None else running_var.data_ptr(), factor, eps, code,
                             mean.data_ptr(), invstd.data_ptr())
    return out, mean, invstd


def bn_act_forward_eval(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, running_mean: torch.Tensor,
                        running_var: torch.Tensor, eps: float, act: int) -> torch.Tensor:
    """Inference-mode ``act(batch_norm(x))`` with the running statistics."""
    x = _nhwc("x", x)
    n, c, h, w = x.shape
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        _dense(name, t, (c,))
    eps, code = _number("eps", eps, 0.0, 1.0), _act_code(act)
    lib = _lib()
    out = torch.empty_like(x, memory_format=torch.channels_last)
    lib.bn_act_forward_eval(x.data_ptr(), out.data_ptr(), n * h * w, c, weight.data_ptr(), bias.data_ptr(),
                            running_mean.data_ptr(), running_var.data_ptr(), eps, code)
    return out


def bn_act_backward(grad_out: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                    mean: torch.Tensor, invstd: torch.Tensor, act: int, need_weight: bool, need_bias: bool
                    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Gradients of :func:`bn_act_forward_train` (input, and weight / bias where asked for)."""
    x = _nhwc("x", x)
    _nhwc("grad_out", grad_out, x.shape)
    n, c, h, w = x.shape
    for name, t in (("weight", weight), ("bias", bias), ("mean", mean), ("invstd", invstd)):
        _dense(name, t, (c,))
    code = _act_code(act)
    lib = _lib()
    dx = torch.empty_like(x, memory_format=torch.channels_last)
    dw = torch.empty(c) if need_weight else None
    db = torch.empty(c) if need_bias else None
    lib.bn_act_backward(grad_out.data_ptr(), x.data_ptr(), dx.data_ptr(), n * h * w, c, weight.data_ptr(),
                        bias.data_ptr(), mean.data_ptr(), invstd.data_ptr(), code,
                        None if dw is None else dw.data_ptr(), None if db is None else db.data_ptr())
    return dx, dw, db


def se_gate_grad(grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` sums over positions of ``grad_out * x`` (the gradient of SE's per-channel gate)."""
    x = _nhwc("x", x)
    _nhwc("grad_out", grad_out, x.shape)
    n, c, h, w = x.shape
    gs = torch.empty(n, c)
    _lib().se_gate_grad(grad_out.data_ptr(), x.data_ptr(), gs.data_ptr(), n, h * w, c)
    return gs


def se_input_grad(grad_out: torch.Tensor, gate: torch.Tensor, through_pool: torch.Tensor) -> torch.Tensor:
    """``grad_out * gate[n, c] + through_pool[n, c]``, channels_last: SE's input gradient."""
    grad_out = _nhwc("grad_out", grad_out)
    n, c, h, w = grad_out.shape
    _dense("gate", gate, (n, c))
    _dense("through_pool", through_pool, (n, c))
    gx = torch.empty_like(grad_out, memory_format=torch.channels_last)
    _lib().se_input_grad(grad_out.data_ptr(), gate.data_ptr(), through_pool.data_ptr(), gx.data_ptr(), n, h * w, c)
    return gx


def _pair(name: str, v: object, lo: int) -> tuple[int, int]:
    if (not isinstance(v, (tuple, list)) or len(v) != 2
            or any(isinstance(i, bool) or not isinstance(i, int) or i < lo for i in v)):
        raise ValueError(f"{name}: expected two integers >= {lo}, got {v!r}")
    return int(v[0]), int(v[1])


def depthwise_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel: tuple[int, int],
                          stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    """Weight gradient ``(C, 1, kh, kw)`` of a depthwise convolution (zero padding, no dilation)."""
    x = _nhwc("x", x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = _pair("kernel", kernel, 1), _pair("stride", stride, 1), _pair("padding", padding, 0)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"kernel {kernel} with padding {padding} does not fit a {h}x{w} map")
    _nhwc("grad_out", grad_out, (n, c, ho, wo))
    grad_w = torch.empty(c, 1, kh, kw)
    _lib().depthwise_weight_grad(x.data_ptr(), grad_out.data_ptr(), grad_w.data_ptr(), n, h, w, c, ho, wo, kh, kw,
                                 sh, sw, ph, pw)
    return grad_w
