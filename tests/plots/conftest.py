from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The fake-study builder lives with the results tests; these folders are not packages, so add it to the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "results"))
from results_fakes import study_folder


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/<study>/study.db holding a fake multi-objective study named like its folder."""
    return study_folder(tmp_path_factory.mktemp("results"))
