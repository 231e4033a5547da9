"""``--mlflow [URI]`` and ``--tensorboard [DIR]``: the tracking flags of search, confirm, fidelity and ablate."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from nas_harness.cli._checks import text


def add_tracking_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mlflow", nargs="?", const="", metavar="URI", type=text(4096, empty=True),
                   help="log to MLflow: one run for the study, one child run per trial; URI: a tracking server "
                        "(http://host:5000) or a local folder (default <results>/<name>/mlruns) (tracking.mlflow)")
    p.add_argument("--tensorboard", nargs="?", const="", metavar="DIR", type=text(4096, empty=True),
                   help="write TensorBoard event files to DIR (default <results>/<name>/tensorboard) "
                        "(tracking.tensorboard)")


def flag_tracking(args: argparse.Namespace, base: Any = None) -> Any:
    """The ``[tracking]`` table ``base`` (default: all off) with the flags applied."""
    from nas_harness.tracking import TrackingConfig, tracking_overrides

    d = (base or TrackingConfig()).to_dict()
    d.update({k.split(".", 1)[1]: v for k, v in tracking_overrides(args.mlflow, args.tensorboard).items()})
    return TrackingConfig.from_dict(d, "tracking")


def job_tracking(cfg: Any, name: str, out_dir: str | Path, kind: str, *, secrets: Iterable[str] = (),
                 params: dict[str, Any] | None = None) -> tuple[Any, Callable[[Any], None] | None]:
    """The trackers of a job store (confirm, fidelity, ablate) named ``name`` with results in ``out_dir``, their
    parent run opened, and the ``on_record`` callback that logs each stored job (None when tracking is off)."""
    from nas_harness.tracking import entry_of_job, open_tracking

    tracking = open_tracking(cfg.settings(out_dir), name, secrets=secrets)
    if not tracking.active:
        return tracking, None
    tracking.start(params or {}, {"nas.kind": kind})
    return tracking, lambda run: tracking.entry(entry_of_job(run, tracking.secrets))


def evaluation_tracking(args: argparse.Namespace, kind: str, store_suffix: str, scaling: bool = False
                        ) -> tuple[Any, Callable[[Any], None] | None]:
    """Trackers of ``confirm`` / ``fidelity`` (flags only): the parent run is the job store
    ``<study>-<store_suffix>`` beside the study it re-evaluates."""
    from nas_harness.tracking import StudyTracking

    if (args.mlflow is None and args.tensorboard is None) or args.report_only:
        return StudyTracking([], ""), None
    from nas_harness.evaluation.recipe import open_study_source

    src, _ = open_study_source(args.study, args.study_name, scaling)
    out = Path(args.out) if args.out else (src.folder or Path("results") / src.study_name.removesuffix("-scaling"))
    return job_tracking(flag_tracking(args), f"{src.study_name}-{store_suffix}", out, kind,
                        secrets=[str(args.study), args.ray_address],
                        params={"kind": kind, "source_study": src.study_name, "storage": src.label})
