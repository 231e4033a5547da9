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


class LazyTracking:
    """A job store's trackers, opened on first use (the first stored run, or the report): a command that stops
    on bad input before it runs anything creates no run and no folder."""

    def __init__(self, make: Callable[[], Any] | None) -> None:
        self._make = make
        self._tracking: Any = None

    def _get(self) -> Any:
        if self._tracking is None and self._make is not None:
            self._tracking = self._make()
        return self._tracking

    def record(self, run: Any) -> None:
        """Log one stored job (``on_record`` of the job runners)."""
        from nas_harness.tracking import entry_of_job

        tracking = self._get()
        if tracking is not None and tracking.active:
            tracking.entry(entry_of_job(run, tracking.secrets))

    def artifacts(self, paths: Iterable[Path], folder: str = "") -> None:
        tracking = self._get()
        if tracking is not None:
            tracking.artifacts(paths, folder)

    def close(self) -> None:
        if self._tracking is not None:
            self._tracking.close()


def job_tracking(cfg: Any, name: str | Callable[[], tuple[str, Path]], out_dir: str | Path | None, kind: str, *,
                 secrets: Iterable[str] = (), params: dict[str, Any] | None = None
                 ) -> tuple[LazyTracking, Callable[[Any], None] | None]:
    """The trackers of a job store (confirm, fidelity, ablate) named ``name`` with results in ``out_dir``
    (``name`` may be a function giving both, called when the trackers open) and the ``on_record`` callback that
    logs each stored job; (a tracking that does nothing, None) when ``cfg`` turns no tracker on."""
    if not cfg.active:
        return LazyTracking(None), None
    secrets = tuple(secrets)

    def make() -> Any:
        from nas_harness.tracking import open_tracking

        store, out = name() if callable(name) else (name, Path(out_dir or "."))
        tracking = open_tracking(cfg.settings(out), store, secrets=secrets)
        if tracking.active:
            tracking.start({"kind": kind, **(params or {})}, {"nas.kind": kind})
        return tracking

    lazy = LazyTracking(make)
    return lazy, lazy.record


def evaluation_tracking(args: argparse.Namespace, kind: str, store_suffix: str, scaling: bool = False
                        ) -> tuple[LazyTracking, Callable[[Any], None] | None]:
    """Trackers of ``confirm`` / ``fidelity`` (flags only): the parent run is the job store
    ``<study>-<store_suffix>`` beside the study it re-evaluates."""
    if args.report_only:
        return LazyTracking(None), None

    def where() -> tuple[str, Path]:
        from nas_harness.evaluation.recipe import open_study_source

        src, _, _ = open_study_source(args.study, args.study_name, scaling, args.out, kind)
        out = Path(args.out) if args.out else (src.folder or Path("results") / src.study_name.removesuffix(
            "-scaling"))
        return f"{src.study_name}-{store_suffix}", out

    return job_tracking(flag_tracking(args), where, None, kind, secrets=[str(args.study), args.ray_address])
