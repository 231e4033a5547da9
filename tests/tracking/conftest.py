"""A real MLflow tracking server for the session (``helpers.mlflow_server``): started once, on first use (the
slow part of these tests: a few seconds), and stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("mlflow")
    from helpers.mlflow_server import start_mlflow_server

    try:
        server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()
