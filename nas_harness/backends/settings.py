"""Where and how trials run: the ``[run]`` and ``[ray]`` tables shared by study and ablation files."""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from nas_harness._config import RESULTS_DIR, Bool, ConfigModel, Int, Num, Text, bad
from nas_harness.errors import ConfigError

STORAGE_FORMS = ("'' (SQLite under results/<name>/)", "sqlite:///path.db", "postgresql://user@host/db",
                 "mysql://...", "journal:path.log")


def check_storage_url(url: str) -> str:
    """Refuse what is not a storage URL (a bare path would otherwise be taken for a file name)."""
    if url and not (url.startswith("journal:") or "://" in url):
        raise bad("", f"{url!r} is not a storage URL; allowed: {', '.join(STORAGE_FORMS)}")
    if url.startswith("journal:") and not url[len("journal:"):].removeprefix("//").strip():
        raise bad("", "journal: needs a file path, e.g. journal:results/x/study.log")
    from nas_harness.records._storage import MEMORY_REFUSED, in_memory, redact

    if in_memory(url):
        raise bad("", f"{redact(url)} {MEMORY_REFUSED}")
    return url


#: Environment that keeps idle OpenMP threads from spinning on a shared machine (set unless the user chose).
PASSIVE_WAIT = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
SPIN_OPT_OUT = "NAS_HARNESS_SPIN_WAIT"


def passive_wait_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The OpenMP wait settings applied to worker processes: passive waiting (idle threads sleep instead of
    spinning, so a busy machine is shared fairly), unless ``$NAS_HARNESS_SPIN_WAIT=1`` opts out or the user
    set the variable.  Must be in the environment before the OpenMP runtime starts (before torch is imported)."""
    env = dict(os.environ if env is None else env)
    value = env.get(SPIN_OPT_OUT, "") or "0"  # set but empty = unset
    if value not in ("0", "1"):
        raise ConfigError(f"${SPIN_OPT_OUT} = {value[:40]!r}: allowed values: 1 (idle OpenMP threads spin), 0 or "
                          "unset (they wait passively)")
    if value == "1":
        return {}
    return {k: v for k, v in PASSIVE_WAIT.items() if k not in env}


class RunSettings(ConfigModel):
    """``[run]``: storage, output folder, backend, console output, liveness of concurrent workers."""

    storage: Annotated[Text, Field(max_length=4096, description=(
        "Optuna storage URL; '' = SQLite file under the results folder; 'journal:<file>' = journal file"))] = ""
    results_dir: Annotated[Text, Field(min_length=1, max_length=4096,
                                       description="parent folder of <name>/ (tables, figures, caches)")
                    ] = RESULTS_DIR
    backend: Annotated[Literal["local", "ray"], Field(description=(
        "local: worker processes on this machine; ray: Ray Tune"))] = "local"
    workers: Annotated[Int, Field(ge=0, le=1024, description=(
        "local backend: trials run at once, each a process on the same storage; 0 = as many as the cores allow at "
        "the recipe's threads per trial (a larger number is cut to that, with a note)"))] = 0
    progress: Annotated[Bool, Field(description="terminal progress bar")] = True
    plots: Annotated[Bool, Field(description="write figures at the end")] = True
    heartbeat_s: Annotated[Int, Field(ge=1, le=3600, description=(
        "seconds between a worker's heartbeats for its running trials; a trial whose worker is gone (same host and "
        "PID namespace: its process ended; elsewhere: its heartbeat seen unchanged for 6 intervals of the observer's "
        "clock) is failed with a reason and its arch queued again"))
    ] = 10

    @field_validator("storage")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_storage_url(v)


class RayConfig(ConfigModel):
    """``[ray]``: resources per trial and the cluster to join (used with ``backend = "ray"``)."""

    cpus_per_trial: Annotated[Num, Field(ge=0.01, le=1024, description="CPUs reserved per trial")] = 1.0
    gpus_per_trial: Annotated[Num, Field(ge=0, le=64, description="GPUs per trial (0.25 = 4 trials per GPU)")] = 0.0
    max_concurrent: Annotated[Int, Field(ge=0, le=100_000, description="0 = as many as resources allow")] = 0
    address: Annotated[Text, Field(max_length=1024, description="cluster to join; '' = $RAY_ADDRESS or a local Ray")
                       ] = ""
    num_cpus: Annotated[Int, Field(ge=0, le=100_000, description="local Ray only: CPUs to give it (0 = all)")] = 0


def stored_settings(cfg: Any) -> dict[str, Any]:
    """A validated file (study, ablation, scaling curves) as it is stored with its runs: ``run.storage``,
    ``ray.address`` and a tracking URI where the file has one, with their credentials redacted."""
    from nas_harness.records import redact

    d = cfg.to_dict()
    d["run"]["storage"] = redact(d["run"]["storage"])
    d["ray"]["address"] = redact(d["ray"]["address"])
    if isinstance(d.get("tracking"), dict) and d["tracking"].get("mlflow_uri"):
        d["tracking"]["mlflow_uri"] = redact(d["tracking"]["mlflow_uri"])
    return d


def fixed_jobs_threads(cfg: Any) -> int:
    """The thread count a new ablation or scaling-curves store fixes when ``train.threads`` is omitted: a Ray
    job's whole CPUs, else one (parallel jobs before intra-op threads: the local workers then run as many jobs at
    once as there are cores, as a study's do); stored and reused on every resume, so stores made with the earlier
    default (this machine's cores) keep theirs."""
    if cfg.run.backend == "ray":
        return max(1, int(cfg.ray.cpus_per_trial))
    return 1
