"""Issue #12, data sets: a root the user names is used or refused (never silently replaced by the system copy),
image folders need two classes and refuse any image that does not decode (decompression bombs included),
oversized or malformed files are one DataError line naming the file."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import urllib.request
import zlib

import numpy as np
import pytest

from nas_harness.data import (
    ProxyConfig,
    _idx,
    cifar,
    clear_cache,
    folder,
    load_cifar,
    load_fashion_mnist,
    load_image_folder,
    load_proxy,
)
from nas_harness.data import fashion_mnist as fm
from nas_harness.errors import DataError
from tests.data.test_data_loaders import write_fmnist, write_png

_URLRETRIEVE = urllib.request.urlretrieve


@pytest.fixture
def system_copy(tmp_path, monkeypatch):
    """A fake system copy (value 5) that a named root must never fall back to."""
    system = write_fmnist(tmp_path / "system", value=5)
    monkeypatch.setattr(fm, "SYSTEM_DIR", system)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(fm.ENV_VAR, raising=False)

    def no_download(*a, **k):
        raise AssertionError("tests must never download")

    monkeypatch.setattr(fm.urllib.request, "urlretrieve", no_download)
    return system


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip()
    return msg


# ------------------------------------------------------------------------------------------ Fashion-MNIST roots

def test_named_root_without_the_data_is_refused_not_replaced(tmp_path, system_copy):
    (tmp_path / "empty").mkdir()
    assert load_fashion_mnist().train_x.max() == 5  # nothing named: the system copy
    with pytest.raises(DataError) as err:
        load_fashion_mnist(tmp_path / "empty")
    msg = one_line(err)
    assert "data.root" in msg and str(tmp_path / "empty") in msg and "train-images-idx3-ubyte.gz" in msg


def test_named_root_that_does_not_exist_says_so(tmp_path, system_copy):
    with pytest.raises(DataError, match="does not exist"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_named_root_with_some_files_names_the_missing_one(tmp_path, system_copy):
    d = write_fmnist(tmp_path / "partial")
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"lacks t10k-labels-idx1-ubyte\.gz"):
        load_fashion_mnist(d)


def test_environment_root_is_also_used_or_refused(tmp_path, system_copy, monkeypatch):
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path / "elsewhere"))
    with pytest.raises(DataError, match=r"\$NAS_HARNESS_DATA"):
        load_fashion_mnist()
    write_fmnist(tmp_path / "elsewhere" / "fashion-mnist", value=7)
    assert load_fashion_mnist().train_x.max() == 7


def test_named_root_through_the_proxy_never_trains_on_the_system_copy(tmp_path, system_copy):
    clear_cache()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"data\.root"):
        load_proxy(ProxyConfig(dataset="fashion_mnist", root=str(tmp_path / "empty"), train_subset=10, val_size=5))


def test_download_with_a_named_root_goes_into_it(tmp_path, monkeypatch, system_copy):
    mirror = write_fmnist(tmp_path / "mirror", value=3)
    monkeypatch.setattr(fm, "FILES", {n: hashlib.md5((mirror / n).read_bytes()).hexdigest() for n in fm.FILES})
    monkeypatch.setattr(fm, "_BASE_URL", mirror.as_uri() + "/")
    monkeypatch.setattr(fm.urllib.request, "urlretrieve", _URLRETRIEVE)  # a local file:// mirror only
    raw = load_fashion_mnist(tmp_path / "mine", allow_download=True)
    assert raw.source == str(tmp_path / "mine") and raw.train_x.max() == 3


def test_gzip_bomb_idx_is_refused_without_expanding_it(tmp_path, monkeypatch):
    monkeypatch.setattr(_idx, "MAX_IDX_BYTES", 1 << 16)
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 1 << 20) + b"\0" * (1 << 20)))
    with pytest.raises(DataError, match=r"bomb\.gz: more than"):
        _idx.read_idx(path, 1)


# ------------------------------------------------------------------------------------------ image folders

def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("layout", ["flat", "split"])
def test_fewer_than_two_classes_is_an_error(tmp_path, layout):
    for i in range(6):
        write_png(tmp_path / ("train/" if layout == "split" else "") / "only" / f"{i}.png", (i, 0, 0))
        if layout == "split":
            write_png(tmp_path / "test" / "only" / f"{i}.png", (i, 0, 0))
    with pytest.raises(DataError, match=r"at least 2 class sub-directories, found 1 \('only'\)") as err:
        load_image_folder(tmp_path)
    one_line(err)


def test_no_class_at_all_is_an_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="found 0"):
        load_image_folder(tmp_path)


@pytest.mark.parametrize("size", [(20000, 20000), (9000, 9000), (100000, 1), (0, 5)])
def test_decompression_bomb_header_is_a_data_error_naming_the_file(tmp_path, size):
    for c in ("a", "b"):
        for i in range(3):
            write_png(tmp_path / c / f"{i}.png", (40 * i, 0, 0))
    (tmp_path / "a" / "big.png").write_bytes(png_header(*size))
    with pytest.raises(DataError, match=r"a/big\.png") as err:
        load_image_folder(tmp_path, size=8)
    one_line(err)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a" + b"\xff" * 20, b"\xff\xd8\xff" + b"\0" * 50,
                                     b"BM" + b"\xff" * 60, b"P6\n99999 99999\n255\n"])
def test_any_undecodable_image_is_a_data_error_naming_the_file(tmp_path, content):
    for c in ("a", "b"):
        for i in range(3):
            write_png(tmp_path / c / f"{i}.png", (40 * i, 0, 0))
    ext = {b"G": ".gif", b"\xff": ".jpg", b"B": ".bmp", b"P": ".ppm"}.get(content[:1], ".png")
    (tmp_path / "b" / f"broken{ext}").write_bytes(content)
    with pytest.raises(DataError, match=rf"b/broken\{ext}: ") as err:
        load_image_folder(tmp_path, size=8)
    one_line(err)


def test_pixel_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(folder, "MAX_IMAGE_PIXELS", 10 * 10)
    for c in ("a", "b"):
        write_png(tmp_path / c / "0.png", (1, 2, 3), size=(11, 10))
        write_png(tmp_path / c / "1.png", (1, 2, 3), size=(11, 10))
    with pytest.raises(DataError, match=r"11x10 pixels; at most 100"):
        load_image_folder(tmp_path, size=8)


# ------------------------------------------------------------------------------------------ CIFAR

def test_oversized_cifar_file_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "MAX_FILE_BYTES", 1000)
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for name in [*(f"data_batch_{j}" for j in range(1, 6)), "test_batch"]:
        (d / name).write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(DataError, match=r"data_batch_1: .* bytes; a CIFAR batch file is at most"):
        load_cifar("cifar10", tmp_path)


@pytest.mark.parametrize("obj", [{b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]},
                                 {b"data": np.zeros((2, 3072), np.uint8), b"labels": [[0], [1]]},
                                 {b"data": "text", b"labels": [0]}, [1, 2, 3], None])
def test_malformed_cifar_pickle_is_a_data_error(tmp_path, obj):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    good = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    for name in [*(f"data_batch_{j}" for j in range(1, 6)), "test_batch"]:
        (d / name).write_bytes(pickle.dumps(good, protocol=2))
    (d / "data_batch_2").write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DataError, match="data_batch_2") as err:
        load_cifar("cifar10", tmp_path)
    one_line(err)
