"""Reader for the IDX format of (Fashion-)MNIST, gzip-compressed or not.

Every structural fact is checked (magic number, element type, rank, declared sizes vs. actual bytes) so a
truncated or corrupt download fails with a message naming the file instead of silently yielding garbage.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from nas_harness._config import open_regular
from nas_harness.errors import DataError

_UBYTE = 0x08
#: Largest IDX content read (decompressed); Fashion-MNIST's training images are 47 MB.  A gzip "bomb" that
#: expands beyond it is refused without being expanded.
MAX_IDX_BYTES = 1 << 30


def _read_capped(f: BinaryIO) -> bytes:
    """Everything in ``f``, or a little more than MAX_IDX_BYTES (read in chunks: nothing is allocated ahead)."""
    chunks: list[bytes] = []
    total = 0
    while total <= MAX_IDX_BYTES:
        chunk = f.read(1 << 22)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def read_idx(path: Path, expect_ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes with ``expect_ndim`` dimensions; raise DataError naming it."""
    try:
        with open_regular(path, str(path), DataError) as f:
            magic = f.read(2)
            f.seek(0)
            if magic == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=f) as g:
                    raw = _read_capped(g)
            else:
                raw = _read_capped(f)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read (corrupt or truncated gzip?): {exc}") from None
    if len(raw) > MAX_IDX_BYTES:
        raise DataError(f"{path}: more than {MAX_IDX_BYTES:,} bytes (decompressed); not a proxy data set file")
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes)")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _UBYTE or ndim != expect_ndim:
        magic = int.from_bytes(raw[:4], "big")
        want = (_UBYTE << 8) | expect_ndim
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08x} (expected 0x{want:08x}, ubyte IDX rank {expect_ndim})"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: size mismatch, header declares {'x'.join(map(str, dims))} = {expected} bytes "
            f"but file holds {len(raw) - header} (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()
