"""CIFAR-10 / CIFAR-100 from a local directory, official binary format or python-pickle format.

The pickle files are read with a restricted unpickler that only resolves the handful of numpy
reconstruction functions an array needs; any other global (``os.system``, ``builtins.eval`` ...) is refused,
so a malicious file cannot execute code.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from nas_harness._config import read_file
from nas_harness.data._raw import RawDataset, check_labels
from nas_harness.errors import DataError

_PIXELS = 3 * 32 * 32
#: Largest batch file read (CIFAR-100's train.bin is 150 MB): anything larger is not a CIFAR file.
MAX_FILE_BYTES = 1 << 30
_LAYOUT = {
    # name: (binary subdir, binary train files, binary test file, label bytes, pickle subdir,
    #        pickle train files, pickle test file, label key, classes)
    "cifar10": ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)], "test_batch.bin", 1,
                "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch", b"labels", 10),
    "cifar100": ("cifar-100-binary", ["train.bin"], "test.bin", 2,
                 "cifar-100-python", ["train"], "test", b"fine_labels", 100),
}
_SAFE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _read(path: Path) -> bytes:
    return read_file(path, MAX_FILE_BYTES, str(path), DataError, what="a CIFAR batch file")


def safe_unpickle(path: Path) -> Any:
    """Unpickle ``path`` allowing only numpy array reconstruction; DataError on anything else (a global
    other than numpy's array reconstructors, a truncated or malformed pickle, a file too large)."""
    raw = _read(path)
    try:
        return _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            ImportError, OSError, RecursionError, MemoryError, OverflowError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise DataError(f"{path}: not a safe CIFAR pickle ({type(exc).__name__}: {detail})") from None


def _read_binary(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(_read(path), dtype=np.uint8)
    rec = label_bytes + _PIXELS
    if raw.size == 0 or raw.size % rec:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of {rec}-byte CIFAR records "
                        f"(truncated or wrong format)")
    raw = raw.reshape(-1, rec)
    return raw[:, label_bytes:].reshape(-1, 3, 32, 32).copy(), raw[:, label_bytes - 1].astype(np.int64)


def _read_pickle(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    obj = safe_unpickle(path)
    if not isinstance(obj, dict) or b"data" not in obj or label_key not in obj:
        raise DataError(f"{path}: missing b'data' / {label_key!r} entries (not a CIFAR batch)")
    try:
        data = np.asarray(obj[b"data"])
        labels = np.asarray(obj[label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{path}: data/labels are not arrays of numbers ({type(exc).__name__})") from None
    if labels.ndim != 1:
        raise DataError(f"{path}: labels have shape {labels.shape}, expected a flat list")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise DataError(f"{path}: data is {data.dtype} {data.shape}, expected uint8 (N, {_PIXELS})")
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(labels)} labels but {len(data)} images")
    return data.reshape(-1, 3, 32, 32), labels


def _locate(root: Path, subdir: str, files: list[str]) -> Path | None:
    for d in (root, root / subdir):
        if all((d / f).is_file() for f in files):
            return d
    return None


def load_cifar(name: str, root: str | os.PathLike[str]) -> RawDataset:
    """Load ``'cifar10'`` or ``'cifar100'`` from ``root`` (or its official sub-directory), binary preferred."""
    if name not in _LAYOUT:
        raise DataError(f"unknown CIFAR variant {name!r}; allowed: {sorted(_LAYOUT)}")
    bin_dir, bin_train, bin_test, lbytes, py_dir, py_train, py_test, key, ncls = _LAYOUT[name]
    base = Path(root).expanduser()
    d = _locate(base, bin_dir, [*bin_train, bin_test])
    if d is not None:
        files = [d / f for f in [*bin_train, bin_test]]
        parts = [_read_binary(f, lbytes) for f in files]
    else:
        d = _locate(base, py_dir, [*py_train, py_test])
        if d is None:
            raise DataError(
                f"{name}: no binary ({bin_dir}/{bin_test} ...) or python ({py_dir}/{py_test} ...) files under "
                f"{base}; download the official archive and extract it there"
            )
        files = [d / f for f in [*py_train, py_test]]
        parts = [_read_pickle(f, key) for f in files]
    for f, (_, y) in zip(files, parts):
        check_labels(y, ncls, str(f), require_all=False)
    train_x = np.concatenate([p[0] for p in parts[:-1]])
    train_y = np.concatenate([p[1] for p in parts[:-1]])
    test_x, test_y = parts[-1]
    check_labels(train_y, ncls, f"{name} training files in {d}")
    return RawDataset(name=name, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                      num_classes=ncls, source=str(d))
