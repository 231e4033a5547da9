"""A tiny, learnable, clearly-labelled synthetic dataset for unit tests (never a default).

Each class is a fixed random low-frequency pattern; samples are that pattern plus noise and a random shift,
so a small network can learn it in a few steps while the test still exercises the real training path.
"""

from __future__ import annotations

import numpy as np

from nas_harness.data._raw import RawDataset


def make_synthetic(num_classes: int = 10, train_per_class: int = 64, test_per_class: int = 16,
                   size: int = 16, channels: int = 3, seed: int = 0) -> RawDataset:
    """Class-template images with noise; deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, size=(num_classes, channels, 4, 4))
    templates = np.kron(coarse, np.ones((1, 1, (size + 3) // 4, (size + 3) // 4)))[..., :size, :size]

    def split(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(num_classes), per_class)
        noise = rng.normal(0, 0.15, size=(len(y), channels, size, size))
        x = templates[y] + noise
        shifts = rng.integers(-1, 2, size=(len(y), 2))
        x = np.stack([np.roll(img, tuple(s), axis=(1, 2)) for img, s in zip(x, shifts)])
        return (np.clip(x, 0, 1) * 255).round().astype(np.uint8), y.astype(np.int64)

    train_x, train_y = split(train_per_class)
    test_x, test_y = split(test_per_class)
    return RawDataset(name="synthetic", train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                      num_classes=num_classes, source=f"synthetic(seed={seed})", synthetic=True)
