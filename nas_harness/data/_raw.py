"""The in-memory form every dataset loader returns, before proxy options are applied."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RawDataset:
    """A fully loaded and validated dataset: uint8 images ``(N, C, H, W)`` and int64 labels.

    Loaders build one only after every file has been read and checked, so a half-loaded dataset can never
    reach the trainer.  ``synthetic`` marks the unit-test dataset so it cannot be mistaken for real data.
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    source: str
    synthetic: bool = False

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.dtype != np.uint8 or x.ndim != 4:
                raise ValueError(f"{self.name} {split}_x must be uint8 (N, C, H, W), got {x.dtype} {x.shape}")
            if y.ndim != 1 or len(y) != len(x):
                raise ValueError(f"{self.name} {split}: {len(x)} images but {len(y)} labels")


def check_labels(y: np.ndarray, num_classes: int, where: str, *, require_all: bool = True) -> None:
    """Labels in range and (for training data) every class present: an empty class breaks stratification."""
    from nas_harness.errors import DataError

    if len(y) == 0:
        raise DataError(f"{where}: no samples")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise DataError(f"{where}: label {hi if hi >= num_classes else lo} outside 0..{num_classes - 1}")
    if require_all:
        counts = np.bincount(y, minlength=num_classes)
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            raise DataError(f"{where}: class {int(empty[0])} has no samples (empty class)")
