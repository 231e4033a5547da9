"""``[tracking]``: where a study's trials are copied to (MLflow, TensorBoard), shared by study and ablation files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import Field, field_validator

from nas_harness._config import Bool, ConfigModel, Int, Rules, Text, bad, inert

#: MLflow tracking URI schemes accepted as they are (anything else without '://' is a local folder).
MLFLOW_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks")


class TrackingConfig(ConfigModel):
    """``[tracking]``: one MLflow run per study with one child run per trial, and/or a TensorBoard log folder.

    The study storage stays the record of truth: a tracker that is down or misconfigured is one warning line
    and the study goes on.
    """

    mlflow: Annotated[Bool, Field(description="log the study and its trials to MLflow (pip install "
                                              "'nas-harness[mlflow]')")] = False
    mlflow_uri: Annotated[Text, Field(max_length=4096, description=(
        "applies with mlflow = true: MLflow tracking URI (http://host:port, sqlite:///file.db, ...) or a local "
        "folder; '' = the folder <results>/<name>/mlruns"))] = ""
    experiment: Annotated[Text, Field(min_length=1, max_length=500, description=(
        "applies with mlflow = true: MLflow experiment holding the runs"))] = "nas-harness"
    tensorboard: Annotated[Bool, Field(description="write TensorBoard event files (pip install "
                                                   "'nas-harness[tensorboard]')")] = False
    tensorboard_dir: Annotated[Text, Field(max_length=4096, description=(
        "applies with tensorboard = true: log folder; '' = <results>/<name>/tensorboard"))] = ""
    timeout_s: Annotated[Int, Field(ge=1, le=600, description=(
        "applies with mlflow = true: seconds an MLflow server request may take (one retry) before the tracker is "
        "given up for this run"))] = 10

    _inert: ClassVar[Rules] = inert(mlflow_uri=lambda t: not t.mlflow, experiment=lambda t: not t.mlflow,
                                    timeout_s=lambda t: not t.mlflow,
                                    tensorboard_dir=lambda t: not t.tensorboard)

    @field_validator("mlflow_uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        scheme = v.partition("://")[0] if "://" in v else ""
        if scheme and scheme.split("+")[0] not in MLFLOW_SCHEMES:
            raise bad("", f"{scheme!r} is not an MLflow tracking URI scheme; allowed: "
                          f"{', '.join(s + '://' for s in MLFLOW_SCHEMES)} or a local folder")
        return v

    @property
    def active(self) -> bool:
        return self.mlflow or self.tensorboard

    def settings(self, out_dir: str | Path) -> TrackingSettings:
        """Resolved locations for the study whose results folder is ``out_dir``."""
        out = Path(out_dir)
        uri = self.mlflow_uri
        if self.mlflow and "://" not in uri:
            uri = str(Path(uri) if uri else out / "mlruns")
        tb = str(Path(self.tensorboard_dir) if self.tensorboard_dir else out / "tensorboard") \
            if self.tensorboard else None
        return TrackingSettings(mlflow_uri=uri if self.mlflow else None, experiment=self.experiment,
                                tensorboard_dir=tb, timeout_s=self.timeout_s)


@dataclass(frozen=True)
class TrackingSettings:
    """Resolved ``[tracking]``: ``mlflow_uri`` (a URI, or a local folder that gets an SQLite store and an
    ``artifacts/`` folder), ``tensorboard_dir``; None = that tracker is off."""

    mlflow_uri: str | None = None
    experiment: str = "nas-harness"
    tensorboard_dir: str | None = None
    timeout_s: int = 10

    @property
    def active(self) -> bool:
        return self.mlflow_uri is not None or self.tensorboard_dir is not None


def tracking_overrides(mlflow: str | None, tensorboard: str | None) -> dict[str, object]:
    """Study-file overrides (dotted keys) of the ``--mlflow [URI]`` and ``--tensorboard [DIR]`` flags."""
    out: dict[str, object] = {}
    if mlflow is not None:
        out["tracking.mlflow"] = True
        if mlflow:
            out["tracking.mlflow_uri"] = mlflow
    if tensorboard is not None:
        out["tracking.tensorboard"] = True
        if tensorboard:
            out["tracking.tensorboard_dir"] = tensorboard
    return out
