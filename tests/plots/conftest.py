from __future__ import annotations

from pathlib import Path

import pytest
from helpers.fakes import study_folder


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/<study>/study.db holding a fake multi-objective study named like its folder."""
    return study_folder(tmp_path_factory.mktemp("results"))
