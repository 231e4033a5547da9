"""Several local workers on one study: how a worker process opens the study.

``search --workers N`` (default: as many as the cores allow at the study's threads per trial) has the local
backend start N worker processes on the study's storage (:mod:`nas_harness.backends._workers`); each calls
:func:`open_worker` to rebuild the study's task from its file and runs the one trial loop.

Numbers do not depend on the number of workers: a trial's result depends only on its arch, the recipe (thread
count included) and the seed.  A model-based sampler proposes from the shared history, so with several
workers it may propose other archs than one worker would (each worker's sampler is seeded ``seed + index``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nas_harness.backends._procs import default_workers

__all__ = ["default_workers", "open_worker", "worker_opener"]


def worker_opener(cfg: Any, threads: int | str, target: int, grid: list[dict[str, Any]] | None,
                  first: int) -> tuple[str, str, tuple[Any, ...]]:
    """What the local backend's workers call to open ``cfg``'s study (plain data: see
    :class:`~nas_harness.backends.StudyRun`); ``first``: the trials the study held when this run started."""
    cfg_dict = cfg.to_dict()
    if cfg.run.storage == "":
        cfg_dict["run"]["storage"] = ""
    return (__name__, "open_worker", (cfg_dict, threads, target, grid, first))


def open_worker(cfg_dict: dict[str, Any], threads: int | str, target: int, grid: list[dict[str, Any]] | None,
                first: int, *, index: int, log: Callable[[str], None]) -> tuple[Any, Any, Any]:
    """In worker process ``index``: the study, its task and the worker's trial slots."""
    import optuna

    from nas_harness.records import Heartbeat, StorageLock, TrialSlots, open_storage
    from nas_harness.study.config import StudyConfig
    from nas_harness.study.samplers import make_pruner, make_sampler
    from nas_harness.study.search import build_task

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = StudyConfig.from_dict(cfg_dict)
    task = build_task(cfg, threads)
    if task.evaluator is not None:  # idempotent: finds what the parent prepared
        task.evaluator.prepare(cfg.eval_context(task.train), lambda msg: None)
    pruner = make_pruner(cfg.pruner) if cfg.objective.kind != "multi" else None
    study = optuna.load_study(study_name=cfg.name, storage=open_storage(cfg.storage_url), pruner=pruner)
    # each worker its own draws, and a continued study new ones (see search.claim_sampler_streams)
    study.sampler = make_sampler(cfg.sampler, cfg.objective, cfg.seed + index + first, task.space)
    slots = TrialSlots(study, target, StorageLock(cfg.storage_url), Heartbeat(study._storage, cfg.run.heartbeat_s),
                       task.params_of_arch, candidates=grid, key=lambda p: str(task.space.arch_from_params(p)),
                       log=log)
    return study, task, slots
