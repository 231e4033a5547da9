"""A tiny search study on real Fashion-MNIST (256 training images at 16 px, 1 epoch, one thread), built once
per session and copied for every test that re-evaluates it (tests/evaluation)."""

from __future__ import annotations

import copy
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest

from helpers.studies import TINY
from nas_harness.data.fashion_mnist import find_fashion_mnist

needs_fmnist = pytest.mark.skipif(find_fashion_mnist() is None, reason="Fashion-MNIST not installed "
                                  "(apt-get install dataset-fashion-mnist)")

# The search tests' tiny study (helpers.studies.TINY) on real Fashion-MNIST, with both references enqueued.
TINY_REAL: dict[str, Any] = {
    **copy.deepcopy(TINY),
    "data": {"dataset": "fashion_mnist", "train_subset": 256, "val_size": 200, "resolution": 16, "channels": 1},
    "sampler": {"kind": "random", "enqueue": ["base", "base-nose"]},
    "run": {"n_trials": 6, "progress": False, "plots": False},
}
_TEMPLATE: dict[str, Path] = {}


def tiny_real(results: Path, **sections: Any) -> dict[str, Any]:
    d = copy.deepcopy(TINY_REAL)
    d["run"]["results_dir"] = str(results)
    for k, v in sections.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v
    return d


def real_study_folder(tmp_path: Path) -> Path:
    """``tmp_path/results/tiny`` holding the finished tiny study (study.db)."""
    from nas_harness.study.config import validate
    from nas_harness.study.search import run_search

    if "tiny" not in _TEMPLATE:
        root = Path(tempfile.mkdtemp(prefix="nas_real_study_")) / "results"
        run_search(validate(tiny_real(root)), progress=False, log=lambda m: None)
        _TEMPLATE["tiny"] = root / "tiny"
    dest = tmp_path / "results" / "tiny"
    dest.mkdir(parents=True)
    src = sqlite3.connect(_TEMPLATE["tiny"] / "study.db")  # a consistent copy, the WAL included
    dst = sqlite3.connect(dest / "study.db")
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return dest
