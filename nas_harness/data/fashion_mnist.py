"""Fashion-MNIST: locate the four IDX files, optionally download them (checksummed), and load them.

Lookup: a directory the user names (``data.root`` in a study file, else ``$NAS_HARNESS_DATA``) is the ONLY
place looked in (it or its ``fashion-mnist/`` child): a named directory that does not hold the four files is an
error naming it and the missing file, never silently replaced by another copy.  With nothing named: the Debian
package location ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``), then the
cache directory ``~/.cache/nas-harness/fashion-mnist``.  Nothing is downloaded unless the caller allows it
(into the named directory when there is one, else into the cache).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from nas_harness._config import not_a_folder, open_regular
from nas_harness.data._idx import read_idx
from nas_harness.data._raw import RawDataset, check_labels
from nas_harness.errors import DataError

ENV_VAR = "NAS_HARNESS_DATA"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
_BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# Official MD5s of the published .gz files (the same ones torchvision checks).
FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nas-harness" / "fashion-mnist"


def _file_in(directory: Path, name: str) -> Path | None:
    """The file, accepting an already-decompressed copy (``name`` without ``.gz``)."""
    for cand in (directory / name, directory / name[:-3]):
        if cand.is_file():
            return cand
    return None


def _has_all(directory: Path) -> bool:
    return all(_file_in(directory, name) is not None for name in FILES)


def _named(root: str | os.PathLike[str] | None) -> tuple[Path, str] | None:
    """The directory the user named and how (``data.root`` or ``$NAS_HARNESS_DATA``), or None."""
    if root is not None:
        return Path(root).expanduser(), "data.root"
    env = os.environ.get(ENV_VAR) or None
    return (Path(env).expanduser(), f"${ENV_VAR}") if env is not None else None


def candidate_dirs(root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Directories searched, in order: a named directory (or its ``fashion-mnist/`` child) only, else the
    system copy and the cache."""
    named = _named(root)
    if named is not None:
        p = named[0]
        return [p, p / "fashion-mnist", p / "fashion_mnist"]
    return [SYSTEM_DIR, cache_dir()]


def find_fashion_mnist(root: str | os.PathLike[str] | None = None) -> Path | None:
    """The first directory (in lookup order) holding all four files, or None."""
    for d in candidate_dirs(root):
        try:
            if _has_all(d):
                return d
        except OSError:  # a name too long, a permission problem: not there
            continue
    return None


def _missing(root: Path) -> str:
    """What a named directory lacks, for the error line."""
    for d in (root, root / "fashion-mnist", root / "fashion_mnist"):
        try:
            if not d.is_dir():
                continue
            absent = [name for name in FILES if _file_in(d, name) is None]
        except OSError:
            continue
        if len(absent) < len(FILES):
            return f"{d} lacks {', '.join(absent)}"
    why = not_a_folder(root)  # a FIFO or a file there is named as such, not as missing
    return f"{root} has none of the 4 IDX files" if why is None else f"{root} {why}"


def _md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open_regular(path, str(path), DataError) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_fashion_mnist(dest: Path | None = None, base_url: str | None = None) -> Path:
    """Download the official files into ``dest`` (default: the cache dir), verifying every MD5.

    Files are written to a temporary name and renamed only after the checksum matches, so an interrupted or
    tampered download never becomes visible to later lookups.
    """
    dest = dest or cache_dir()
    base_url = base_url or _BASE_URL
    dest.mkdir(parents=True, exist_ok=True)
    for name, md5 in FILES.items():
        target = dest / name
        if target.is_file() and _md5(target) == md5:
            continue
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.")
        os.fchmod(fd, 0o644)
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            urllib.request.urlretrieve(base_url + name, tmp_path)
            got = _md5(tmp_path)
            if got != md5:
                raise DataError(f"{base_url + name}: MD5 {got} does not match the official {md5}")
            tmp_path.replace(target)
        except OSError as exc:
            raise DataError(f"downloading {base_url + name} failed: {exc}") from None
        finally:
            tmp_path.unlink(missing_ok=True)
    return dest


def load_fashion_mnist(root: str | os.PathLike[str] | None = None, allow_download: bool = False) -> RawDataset:
    """Load train (60k) and test (10k) Fashion-MNIST as ``(N, 1, 28, 28)`` uint8; see module doc for lookup."""
    directory = find_fashion_mnist(root)
    if directory is None:
        named = _named(root)
        if named is not None:
            where, how = named
            if allow_download:
                directory = download_fashion_mnist(where)
            else:
                raise DataError(
                    f"{how} = {str(where)!r} holds no Fashion-MNIST ({_missing(where)}); a named directory is the "
                    f"only place looked in: put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                    f"t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz there (or in a fashion-mnist/ "
                    f"folder in it), name another directory, or remove {how} to use the system copy"
                )
        elif not allow_download:
            where = ", ".join(str(d) for d in candidate_dirs(root))
            raise DataError(
                f"Fashion-MNIST not found (looked in {where}); install it with "
                f"`apt-get install dataset-fashion-mnist`, set {ENV_VAR}=<dir with the 4 IDX .gz files>, "
                f"or allow downloads (data.allow_download = true)"
            )
        else:
            directory = download_fashion_mnist()
    arrays: dict[str, np.ndarray] = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img_path = _file_in(directory, f"{prefix}-images-idx3-ubyte.gz")
        lab_path = _file_in(directory, f"{prefix}-labels-idx1-ubyte.gz")
        assert img_path is not None and lab_path is not None  # guaranteed by find_fashion_mnist
        x = read_idx(img_path, 3)
        y = read_idx(lab_path, 1).astype(np.int64)
        if len(x) != len(y):
            raise DataError(f"{lab_path}: {len(y)} labels but {img_path.name} holds {len(x)} images")
        check_labels(y, 10, str(lab_path), require_all=split == "train")
        arrays[f"{split}_x"], arrays[f"{split}_y"] = x[:, None], y
    return RawDataset(name="fashion_mnist", num_classes=10, source=str(directory), **arrays)
