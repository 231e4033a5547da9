from __future__ import annotations

from pathlib import Path

import pytest
from helpers.real_study import real_study_folder


@pytest.fixture
def real_study(tmp_path: Path) -> Path:
    """``tmp_path/results/tiny``: a finished tiny search study on real Fashion-MNIST."""
    return real_study_folder(tmp_path)
