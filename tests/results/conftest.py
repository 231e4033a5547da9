from __future__ import annotations

import sys
from pathlib import Path

import pytest

# --import-mode=importlib does not put test folders on sys.path; the fake-study builder is shared with
# tests/plots and tests/report, which add this folder the same way.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_fakes import study_folder


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    """results/<study>/study.db holding a fake multi-objective study named like its folder."""
    return study_folder(tmp_path / "results")
