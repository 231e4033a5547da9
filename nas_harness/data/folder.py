"""ImageFolder-style datasets: one sub-directory of images per class (e.g. an ImageNet subset).

Layout ``root/train/<class>/*`` plus ``root/test/<class>/*`` (or ``root/val/<class>/*``, used as the test
split); a flat ``root/<class>/*`` is also accepted, in which case a fixed, stratified 20% of it (seed 0,
independent of the proxy seed) becomes the test split.  Images are decoded once with PIL, converted to RGB,
resized (shorter side) and centre-cropped to ``size`` so they stack into one uint8 array.

Hostile or broken files are errors, never skipped: an image that does not decode (truncated, not an image,
a decompression bomb: more than ``MAX_IMAGE_PIXELS`` pixels declared in its header, checked before any pixel
is decoded) is a one-line :class:`~nas_harness.errors.DataError` naming the file, so a data set is either
loaded whole or refused.  A data set needs at least two classes (one class would score 100% and mean nothing).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nas_harness._config import not_a_folder
from nas_harness.data._raw import RawDataset, check_labels
from nas_harness.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
FLAT_TEST_FRACTION = 0.2
#: Largest image accepted (width x height, from the header, before decoding): 8192 x 8192.
MAX_IMAGE_PIXELS = 8192 * 8192


def _class_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(class_dir: Path) -> list[Path]:
    return sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _load_image(path: Path, size: int) -> np.ndarray:
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w < 1 or h < 1 or w * h > MAX_IMAGE_PIXELS:
                    raise DataError(f"{path}: image of {w}x{h} pixels; at most {MAX_IMAGE_PIXELS:,} pixels are "
                                    "decoded (a decompression bomb or not a proxy image)")
                im = im.convert("RGB")
                scale = size / min(w, h)
                if (w, h) != (size, size):
                    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
                    im = im.resize((nw, nh), Image.Resampling.BILINEAR)
                    left, top = (nw - size) // 2, (nh - size) // 2
                    im = im.crop((left, top, left + size, top + size))
                arr = np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path}: image too large to decode") from None
    except Exception as exc:  # any decoder failure on a hostile or broken file names the file
        detail = " ".join(str(exc).split())[:200]
        raise DataError(f"{path}: cannot decode image ({type(exc).__name__}: {detail})") from None
    return arr.transpose(2, 0, 1)


def _load_split(directory: Path, classes: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    xs: list[np.ndarray] = []
    ys: list[int] = []
    for label, cls in enumerate(classes):
        cdir = directory / cls
        if not cdir.is_dir():
            continue
        files = _images_in(cdir)
        if not files:
            raise DataError(f"{cdir}: empty class directory (no {'/'.join(IMAGE_EXTENSIONS)} images)")
        for f in files:
            xs.append(_load_image(f, size))
            ys.append(label)
    if not xs:
        raise DataError(f"{directory}: no images found")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def _at_least_two(classes: list[str], where: Path) -> list[str]:
    if len(classes) < 2:
        found = f"found {len(classes)}" + (f" ({classes[0]!r})" if classes else "")
        raise DataError(f"{where}: a data set needs at least 2 class sub-directories, {found} (expected "
                        "<class>/<image> or train/<class>/ + test/<class>/)")
    return classes


def load_image_folder(root: str | os.PathLike[str], size: int = 32) -> RawDataset:
    """Load an ImageFolder tree as RGB ``(N, 3, size, size)`` uint8; class index = sorted directory order."""
    base = Path(root).expanduser()
    why = not_a_folder(base)
    if why is not None:
        raise DataError(f"{base}: image folder {why}")
    train_dir = base / "train"
    test_dir = next((base / n for n in ("test", "val") if (base / n).is_dir()), None)
    if train_dir.is_dir() and test_dir is not None:
        classes = _at_least_two([p.name for p in _class_dirs(train_dir)], train_dir)
        unknown = sorted({p.name for p in _class_dirs(test_dir)} - set(classes))
        if unknown:
            raise DataError(f"{test_dir}: class directories {unknown} do not exist in {train_dir}")
        train_x, train_y = _load_split(train_dir, classes, size)
        test_x, test_y = _load_split(test_dir, classes, size)
    else:
        classes = _at_least_two([p.name for p in _class_dirs(base)], base)
        x, y = _load_split(base, classes, size)
        rng = np.random.default_rng(0)
        test_mask = np.zeros(len(y), dtype=bool)
        for c in range(len(classes)):
            idx = np.flatnonzero(y == c)
            n_test = int(round(len(idx) * FLAT_TEST_FRACTION)) if len(idx) > 1 else 0
            test_mask[rng.permutation(idx)[:n_test]] = True
        train_x, train_y, test_x, test_y = x[~test_mask], y[~test_mask], x[test_mask], y[test_mask]
    check_labels(train_y, len(classes), str(train_dir if train_dir.is_dir() else base))
    if len(test_y) == 0:
        raise DataError(f"{base}: the test split is empty (each class needs at least 2 images in a flat folder)")
    return RawDataset(name="folder", train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                      num_classes=len(classes), source=str(base))
