"""ImageFolder-style datasets: one sub-directory of images per class (e.g. an ImageNet subset).

Layout ``root/train/<class>/*`` plus ``root/test/<class>/*`` (or ``root/val/<class>/*``, used as the test
split); a flat ``root/<class>/*`` is also accepted, in which case a fixed, stratified 20% of it (seed 0,
independent of the proxy seed) becomes the test split.  Images are decoded once with PIL, converted to RGB,
resized (shorter side) and centre-cropped to ``size`` so they stack into one uint8 array.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nas_harness.data._raw import RawDataset, check_labels
from nas_harness.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
FLAT_TEST_FRACTION = 0.2


def _class_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(class_dir: Path) -> list[Path]:
    return sorted(p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _load_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = size / min(w, h)
            if (w, h) != (size, size):
                nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
                im = im.resize((nw, nh), Image.Resampling.BILINEAR)
                left, top = (nw - size) // 2, (nh - size) // 2
                im = im.crop((left, top, left + size, top + size))
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})") from None
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


def load_image_folder(root: str | os.PathLike[str], size: int = 32) -> RawDataset:
    """Load an ImageFolder tree as RGB ``(N, 3, size, size)`` uint8; class index = sorted directory order."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DataError(f"{base}: image folder does not exist")
    train_dir = base / "train"
    test_dir = next((base / n for n in ("test", "val") if (base / n).is_dir()), None)
    if train_dir.is_dir() and test_dir is not None:
        classes = [p.name for p in _class_dirs(train_dir)]
        if not classes:
            raise DataError(f"{train_dir}: no class sub-directories")
        unknown = sorted({p.name for p in _class_dirs(test_dir)} - set(classes))
        if unknown:
            raise DataError(f"{test_dir}: class directories {unknown} do not exist in {train_dir}")
        train_x, train_y = _load_split(train_dir, classes, size)
        test_x, test_y = _load_split(test_dir, classes, size)
    else:
        classes = [p.name for p in _class_dirs(base)]
        if not classes:
            raise DataError(f"{base}: no class sub-directories (expected <class>/<image> or train/ + test/)")
        x, y = _load_split(base, classes, size)
        rng = np.random.default_rng(0)
        test_mask = np.zeros(len(y), dtype=bool)
        for c in range(len(classes)):
            idx = np.flatnonzero(y == c)
            n_test = int(round(len(idx) * FLAT_TEST_FRACTION)) if len(idx) > 1 else 0
            test_mask[rng.permutation(idx)[:n_test]] = True
        train_x, train_y, test_x, test_y = x[~test_mask], y[~test_mask], x[test_mask], y[test_mask]
    check_labels(train_y, len(classes), str(train_dir if train_dir.is_dir() else base))
    return RawDataset(name="folder", train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                      num_classes=len(classes), source=str(base))
