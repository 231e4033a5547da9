"""Dataset loaders: real Fashion-MNIST, lookup order, fixture CIFAR (binary + safe pickle), ImageFolder,
and the errors for corrupt, truncated or inconsistent files."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from nas_harness.data import fashion_mnist as fm
from nas_harness.data import (
    find_fashion_mnist,
    load_cifar,
    load_fashion_mnist,
    load_image_folder,
    make_synthetic,
    safe_unpickle,
)
from nas_harness.errors import DataError

HAVE_FMNIST = fm.SYSTEM_DIR.is_dir() and find_fashion_mnist() is not None


def write_idx(path: Path, arr: np.ndarray, *, magic: int | None = None, gz: bool = True,
              truncate: int = 0) -> Path:
    arr = np.asarray(arr, dtype=np.uint8)
    head = struct.pack(">I", magic if magic is not None else (0x08 << 8) | arr.ndim)
    head += struct.pack(f">{arr.ndim}I", *arr.shape)
    raw = head + arr.tobytes()
    raw = raw[: len(raw) - truncate]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def write_fmnist(d: Path, n_train: int = 20, n_test: int = 10, value: int = 7) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(d / f"{prefix}-images-idx3-ubyte.gz", np.full((n, 28, 28), value))
        write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return d


@pytest.fixture
def no_system_data(tmp_path, monkeypatch):
    """Hide the system copy and the cache, and make any download attempt fail loudly."""
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nosystem")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(fm.ENV_VAR, raising=False)

    def no_download(*a, **k):
        raise AssertionError("tests must never download")

    monkeypatch.setattr(fm.urllib.request, "urlretrieve", no_download)


@pytest.mark.skipif(not HAVE_FMNIST, reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist():
    raw = load_fashion_mnist()
    assert raw.train_x.shape == (60000, 1, 28, 28) and raw.test_x.shape == (10000, 1, 28, 28)
    assert raw.train_x.dtype == np.uint8 and raw.train_y.dtype == np.int64
    # The published label order (e.g. Keras docs / original repo): first training labels 9 0 0 3 0 2 7 2 5 5.
    assert raw.train_y[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert np.bincount(raw.train_y).tolist() == [6000] * 10
    assert np.bincount(raw.test_y).tolist() == [1000] * 10
    assert raw.train_x.max() == 255 and raw.train_x.min() == 0 and not raw.synthetic


def test_lookup_order_named_dir_then_env(tmp_path, no_system_data, monkeypatch):
    env_dir = write_fmnist(tmp_path / "env" / "fashion-mnist", value=1)
    named = write_fmnist(tmp_path / "named", value=2)
    monkeypatch.setenv(fm.ENV_VAR, str(tmp_path / "env"))  # parent dir with a fashion-mnist/ child works
    assert find_fashion_mnist() == env_dir
    assert load_fashion_mnist().train_x.max() == 1
    raw = load_fashion_mnist(named)  # an explicitly named directory wins over the environment
    assert raw.train_x.max() == 2 and raw.source == str(named)
    assert raw.train_x.shape == (20, 1, 28, 28) and raw.test_y.tolist() == list(range(10))


def test_cache_dir_is_last_resort(tmp_path, no_system_data):
    cached = write_fmnist(tmp_path / "cache" / "nas-harness" / "fashion-mnist", value=3)
    assert find_fashion_mnist() == cached


def test_missing_data_says_how_to_get_it_and_never_downloads(no_system_data):
    with pytest.raises(DataError) as err:
        load_fashion_mnist()
    msg = str(err.value)
    assert "\n" not in msg and "apt-get install dataset-fashion-mnist" in msg and fm.ENV_VAR in msg


@pytest.mark.parametrize(
    ("kind", "needle"),
    [("magic", "wrong magic"), ("truncated", "size mismatch"), ("count", "labels but"), ("gzip", "cannot read"),
     ("label_range", "outside 0..9"), ("empty_class", "empty class")],
)
def test_corrupt_idx_files_name_the_file(tmp_path, no_system_data, kind, needle):
    d = write_fmnist(tmp_path / "bad")
    bad = d / "train-labels-idx1-ubyte.gz"
    if kind == "magic":
        bad = write_idx(d / "train-images-idx3-ubyte.gz", np.zeros((20, 28, 28)), magic=0x0803 + 0x100)
    elif kind == "truncated":
        bad = write_idx(d / "train-images-idx3-ubyte.gz", np.zeros((20, 28, 28)), truncate=100)
    elif kind == "count":
        write_idx(bad, np.arange(19) % 10)
    elif kind == "gzip":
        bad = d / "train-images-idx3-ubyte.gz"
        bad.write_bytes(bad.read_bytes()[:40])
    elif kind == "label_range":
        write_idx(bad, np.arange(20) % 10 + 1)
    else:
        write_idx(bad, np.arange(20) % 9)
    with pytest.raises(DataError) as err:
        load_fashion_mnist(d)
    assert needle in str(err.value) and str(bad) in str(err.value)


# ---------------------------------------------------------------- CIFAR
def cifar_arrays(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), np.arange(n) % classes


def write_cifar10_bin(d: Path, per_batch: int = 12) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, name in enumerate([*(f"data_batch_{j}.bin" for j in range(1, 6)), "test_batch.bin"]):
        x, y = cifar_arrays(per_batch, 10, i)
        recs = np.concatenate([y.astype(np.uint8)[:, None], x.reshape(per_batch, -1)], axis=1)
        (d / name).write_bytes(recs.tobytes())
        out[name] = (x, y)
    return out


def test_cifar10_binary(tmp_path):
    arrays = write_cifar10_bin(tmp_path / "cifar-10-batches-bin")
    raw = load_cifar("cifar10", tmp_path)  # the official sub-directory is found under root
    assert raw.train_x.shape == (60, 3, 32, 32) and raw.test_x.shape == (12, 3, 32, 32)
    np.testing.assert_array_equal(raw.train_x[12:24], arrays["data_batch_2.bin"][0])
    np.testing.assert_array_equal(raw.test_y, arrays["test_batch.bin"][1])
    assert raw.num_classes == 10


def test_cifar100_binary_uses_fine_labels(tmp_path):
    for name, seed in (("train.bin", 0), ("test.bin", 1)):
        x, fine = cifar_arrays(200, 100, seed)
        coarse = fine // 5
        recs = np.concatenate([coarse.astype(np.uint8)[:, None], fine.astype(np.uint8)[:, None],
                               x.reshape(200, -1)], axis=1)
        (tmp_path / name).write_bytes(recs.tobytes())
    raw = load_cifar("cifar100", tmp_path)
    assert raw.num_classes == 100 and raw.train_y.tolist() == (np.arange(200) % 100).tolist()
    np.testing.assert_array_equal(raw.train_x, cifar_arrays(200, 100, 0)[0])


def test_cifar_truncated_and_empty_class(tmp_path):
    write_cifar10_bin(tmp_path)
    bad = tmp_path / "data_batch_3.bin"
    bad.write_bytes(bad.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"data_batch_3\.bin.*whole number"):
        load_cifar("cifar10", tmp_path)
    write_cifar10_bin(tmp_path, per_batch=9)  # labels 0..8 only: class 9 is empty
    with pytest.raises(DataError, match="class 9 has no samples"):
        load_cifar("cifar10", tmp_path)


def test_cifar_pickle_format(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for i, name in enumerate([*(f"data_batch_{j}" for j in range(1, 6)), "test_batch"]):
        x, y = cifar_arrays(10, 10, i)
        with (d / name).open("wb") as f:
            pickle.dump({b"data": x.reshape(10, -1), b"labels": y.tolist(), b"batch_label": b"x"}, f, protocol=2)
    raw = load_cifar("cifar10", tmp_path)
    assert raw.train_x.shape == (50, 3, 32, 32)
    np.testing.assert_array_equal(raw.test_x, cifar_arrays(10, 10, 5)[0])


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/nas_harness_pwned_test",))


def test_pickle_loader_cannot_execute_code(tmp_path):
    marker = Path("/tmp/nas_harness_pwned_test")
    marker.unlink(missing_ok=True)
    evil = tmp_path / "data_batch_1"
    evil.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}))
    with pytest.raises(DataError, match="refusing to load global"):
        safe_unpickle(evil)
    assert not marker.exists()


# ---------------------------------------------------------------- ImageFolder
def write_png(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (40, 24)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_image_folder_train_test(tmp_path):
    colors = {"cat": (255, 0, 0), "dog": (0, 0, 255), "eel": (0, 255, 0)}
    for split, n in (("train", 3), ("test", 1)):
        for cls, col in colors.items():
            for i in range(n):
                write_png(tmp_path / split / cls / f"{i}.png", col)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")
    raw = load_image_folder(tmp_path, size=16)
    assert raw.train_x.shape == (9, 3, 16, 16) and raw.test_x.shape == (3, 3, 16, 16)
    assert raw.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # sorted class directories
    assert raw.train_x[3, :, 8, 8].tolist() == [0, 0, 255]  # a 'dog' image is blue


def test_image_folder_flat_layout_holds_out_test(tmp_path):
    for cls in ("a", "b"):
        for i in range(5):
            write_png(tmp_path / cls / f"{i}.png", (i * 40, 0, 0))
    raw = load_image_folder(tmp_path, size=8)
    assert len(raw.train_y) == 8 and len(raw.test_y) == 2 and sorted(raw.test_y.tolist()) == [0, 1]


def test_image_folder_errors_name_the_path(tmp_path):
    write_png(tmp_path / "train" / "a" / "0.png", (1, 2, 3))
    write_png(tmp_path / "test" / "a" / "0.png", (1, 2, 3))
    (tmp_path / "train" / "b").mkdir()
    with pytest.raises(DataError, match=r"train/b: empty class"):
        load_image_folder(tmp_path)
    write_png(tmp_path / "train" / "b" / "0.png", (1, 2, 3))
    (tmp_path / "train" / "b" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match=r"train/b/1.png: cannot decode"):
        load_image_folder(tmp_path)


def test_synthetic_is_labelled_and_deterministic():
    a, b = make_synthetic(seed=3), make_synthetic(seed=3)
    assert a.synthetic and a.name == "synthetic"
    np.testing.assert_array_equal(a.train_x, b.train_x)
    assert not np.array_equal(a.train_x, make_synthetic(seed=4).train_x)


def test_download_verifies_checksums(tmp_path, monkeypatch):
    """Download path exercised against a local file:// mirror: good MD5s land in the cache, bad ones don't."""
    import hashlib

    mirror = write_fmnist(tmp_path / "mirror", value=9)
    md5s = {name: hashlib.md5((mirror / name).read_bytes()).hexdigest() for name in fm.FILES}
    monkeypatch.setattr(fm, "FILES", md5s)
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nosystem")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    monkeypatch.setattr(fm, "_BASE_URL", mirror.as_uri() + "/")
    with pytest.raises(DataError):
        load_fashion_mnist()  # downloads are off by default
    bad = dict(md5s, **{"t10k-labels-idx1-ubyte.gz": "0" * 32})
    monkeypatch.setattr(fm, "FILES", bad)
    with pytest.raises(DataError, match="does not match"):
        fm.download_fashion_mnist(base_url=mirror.as_uri() + "/")
    assert not (fm.cache_dir() / "t10k-labels-idx1-ubyte.gz").exists()
    assert not [p for p in fm.cache_dir().iterdir() if p.name.startswith(".")]  # no temp files left
    monkeypatch.setattr(fm, "FILES", md5s)
    raw = fm.load_fashion_mnist(allow_download=True)
    assert raw.source == str(fm.cache_dir()) and raw.train_x.max() == 9
