"""Load any study into a pandas DataFrame, one row per trial, through the trial record only.

Results code never imports the search package: everything it needs (arch string, MACs, accuracies and their
split sizes, whether the trial ran its whole budget, was rejected over budget, is a hand-designed reference)
is read with :meth:`nas_harness.records.TrialRecord.from_attrs` from the user attributes every runner writes.
That keeps old studies readable after the search code changes and lets the same loader read studies produced
by the local and the Ray backends alike.  Storage URLs are shown with their password redacted.  Every
accuracy comes with its Wilson 95 % interval from its split size (``val_ci_low``/``val_ci_high``,
``test_ci_low``/``test_ci_high``; :mod:`nas_harness.results.stats`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas_harness._config import RESULTS_DIR, check_regular, open_regular, unsafe_chars, write_output
from nas_harness.errors import ConfigError
from nas_harness.objectives import TABLE_COSTS
from nas_harness.records import TrialRecord, storage_label, stored_problem

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    import pandas as pd

# Columns every frame has, in this order; per-stage choice columns (Optuna params) follow.
BASE_COLUMNS: tuple[str, ...] = (
    "number", "state", "outcome", "name", "arch", "reference", "is_reference", "macs", "params", "latency_ms",
    "val_acc", "val_n", "val_ci_low", "val_ci_high", "val_acc_final", "test_acc", "test_n", "test_ci_low",
    "test_ci_high", "reward", "epochs", "epochs_planned", "full_budget",
    "rejected", "stopped_by", "feasible", "duration", "wall_time_s", "images_per_s", "device", "threads",
    "cpu_kernels", "seed", "cached", "retry_of", "fail_reason", "macs_resolution", "datetime_start",
    "datetime_complete",
)
#: Columns a study on a benchmark table adds after them (the table's measurements its trials recorded, any of
#: which may be the study's cost: ``objective.cost = "table:..."``).
TABLE_COST_COLUMNS: tuple[str, ...] = tuple(TABLE_COSTS.values())
_SQLITE_SUFFIXES = {".db", ".sqlite", ".sqlite3"}
_SQLITE_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class StudySource:
    """Where a study lives: the Optuna storage (URL or storage object), its name, and its results folder."""

    storage: Any
    study_name: str
    folder: Path | None
    label: str  # storage as the user would type it, for reports

    @property
    def out_dir(self) -> Path:
        """Where outputs about this study go by default: its results folder, else ``results/<study>``."""
        return self.folder if self.folder is not None else Path(RESULTS_DIR) / self.study_name


def _is_sqlite(path: Path) -> bool:
    if path.suffix.lower() in _SQLITE_SUFFIXES:
        return True
    with open_regular(path, f"storage: '{path}'") as f:
        return f.read(16) == _SQLITE_MAGIC


def _storage_for_path(path: Path, write: bool = False) -> tuple[Any, str]:
    """Open an existing SQLite or journal file, read-only unless ``write`` (never creates one); a damaged file
    is named."""
    from nas_harness.records import open_storage

    url = f"sqlite:///{path.resolve()}" if _is_sqlite(path) else f"journal:{path.resolve()}"
    return open_storage(url, "storage", create=write), str(path)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _folder_storage(folder: Path, write: bool = False) -> tuple[Any, str]:
    db = folder / "study.db"
    check_regular(db, f"storage: '{db}'")
    if db.is_file():
        return _storage_for_path(db, write)
    candidates = sorted(
        p for p in folder.iterdir()
        if p.is_file() and (p.suffix.lower() in _SQLITE_SUFFIXES or p.name.endswith((".log", ".journal")))
    )
    if len(candidates) == 1:
        return _storage_for_path(candidates[0], write)
    raise ConfigError(
        f"storage: folder '{folder}' has no study.db (found {len(candidates)} candidate storage files); "
        "pass the storage file or URL explicitly"
    )


def resolve_source(source: str | Path, study_name: str | None = None, write: bool = False) -> StudySource:
    """Turn a results folder, SQLite/journal file path or storage URL (+ optional study name) into a source.

    Existence is checked first, because Optuna would silently create an empty SQLite database for a typo.
    The storage is opened read-only (readers never change a study) unless ``write``: ``confirm`` and
    ``fidelity`` store their runs beside the study.
    """
    import optuna

    from nas_harness.records import open_storage, redact

    text = str(source)
    folder: Path | None
    if unsafe_chars(text) or len(text) > 4096:
        raise ConfigError(f"storage: {redact(text)[:60]!r} is not a results folder, SQLite/journal file or storage URL")
    if text.startswith("journal:"):  # the search's spelling of a journal-file storage
        text = text[len("journal:"):].removeprefix("//")
        if not _is_file(Path(text)):
            raise ConfigError(f"storage: journal file '{text}' does not exist")
        storage, label = _storage_for_path(Path(text), write)
        folder = Path(text).parent
    elif "://" in text:
        folder = None
        if text.startswith("sqlite:///"):
            db = Path(text[len("sqlite:///"):])
            if not _is_file(db):
                raise ConfigError(f"storage: SQLite file '{db}' does not exist")
            folder = db.parent
        storage, label = open_storage(text, "storage", create=write), redact(text)
    else:
        path = Path(text)
        if _is_dir(path):
            storage, label = _folder_storage(path, write)
            folder = path
        elif _is_file(path):
            storage, label = _storage_for_path(path, write)
            folder = path.parent
        else:
            with contextlib.suppress(OSError):  # a FIFO or a device: named as such (it is never read)
                check_regular(path, f"storage: {text[:200]!r}")
            raise ConfigError(
                f"storage: {text[:200]!r} is not a results folder, SQLite/journal file or storage URL"
            )
    try:
        names = optuna.get_all_study_names(storage)
    except Exception as exc:  # corrupt file, unreachable server, wrong format
        detail = " ".join(str(exc).split())[:200]
        raise ConfigError(f"storage: cannot read studies from '{label}': {type(exc).__name__}: {detail}; the file "
                          "is damaged or not an Optuna storage") from None
    if not names:
        raise ConfigError(f"storage: '{label}' holds no study")
    if study_name is None:
        if len(names) == 1:
            study_name = names[0]
        elif folder is not None and folder.name in names:
            study_name = folder.name
        else:
            raise ConfigError(f"study_name: '{label}' holds several studies; choose one of {sorted(names)}")
    elif study_name not in names:
        raise ConfigError(f"study_name: no study '{study_name}' in '{label}'; available: {sorted(names)}")
    return StudySource(storage=storage, study_name=study_name, folder=folder, label=label)


def load_study(source: str | Path | StudySource, study_name: str | None = None) -> optuna.Study:
    """Open an existing study (never creates one) whose stored trial rows are consistent (:func:`stored_trials`):
    every reader gets the one-line :class:`ConfigError` for a storage changed behind nas-harness's back."""
    import optuna

    src = source if isinstance(source, StudySource) else resolve_source(source, study_name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=src.study_name, storage=src.storage)
    stored_trials(study)
    return study


#: What Optuna's storage raises for a stored row it cannot turn into a trial: an ``assert`` on a value and its
#: type (a NULL value: NaN is stored as NULL), text that is not JSON (attributes, distributions), a parameter
#: value its distribution cannot map (NULL, out of range), an unknown distribution or trial state (LookupError).
_ROW_ERRORS = (AssertionError, ValueError, TypeError, LookupError, AttributeError)


def stored_trials(study: Any, states: Any = None) -> list[optuna.trial.FrozenTrial]:
    """The trials of a study (``deepcopy=False``; only ``states`` if given), refused in one line naming the
    storage, the study and, where it can be found, the trial, when a stored row is not one Optuna and
    nas-harness write: a row Optuna cannot read (see ``_ROW_ERRORS``), a COMPLETE trial without one objective
    value per direction, a value that is not a number, or a value stored for a trial that is not finished.
    Every reader of stored trials goes through it (:func:`load_study` once per open), as does a continued search.
    """
    try:
        trials = study.get_trials(deepcopy=False, states=states)
    except _ROW_ERRORS as exc:
        raise _inconsistent(study, _unreadable_trial(study), _row_hint(exc)) from None
    n_directions = len(study.directions)
    for t in trials:
        problem = _values_problem(t, n_directions)
        if problem is not None:
            raise _inconsistent(study, t.number, problem)
    return trials


def _values_problem(trial: Any, n_directions: int) -> str | None:
    values, state = trial.values, trial.state.name
    if state == "COMPLETE" and values is None:
        return "a COMPLETE trial without its objective value"
    if values is None:
        return None
    if state not in ("COMPLETE", "PRUNED"):  # Optuna stores a PRUNED trial's last reported value as its value
        return f"a {state} trial with a stored objective value"
    if len(values) != n_directions:
        return f"{len(values)} objective value(s) for {n_directions} direction(s)"
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        return f"objective values {_short(values)} are not numbers"
    return None


def _row_hint(exc: BaseException) -> str:
    import json

    if isinstance(exc, json.JSONDecodeError):
        return "an attribute or distribution that is not JSON"
    if isinstance(exc, AssertionError):
        return "a NULL objective or intermediate value: NaN is stored as NULL"
    detail = " ".join(str(exc).split())
    detail = detail if len(detail) <= 80 else detail[:77] + "..."
    return f"Optuna cannot read it: {type(exc).__name__}" + (f": {detail}" if detail else "")


def _unreadable_trial(study: Any) -> int | None:
    """The number of the first trial whose row Optuna cannot read (one storage call per trial), None when none
    can be singled out."""
    storage, study_id = study._storage, study._study_id
    number = 0
    try:
        while number < 10_000_000:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
            try:
                storage.get_trial(trial_id)
            except _ROW_ERRORS:
                return number
            number += 1
    except Exception:  # no trial with this number (KeyError) or the storage cannot say: no trial named
        return None
    return None


def _inconsistent(study: Any, trial: int | None, problem: str) -> ConfigError:
    where = f"study {study.study_name!r}" + (f", trial {trial}" if trial is not None else "")
    return ConfigError(f"storage {storage_label(study)}: {where}: a stored trial row is inconsistent ({problem}): "
                       "changed outside nas-harness?")


def _num(value: Any) -> float:
    """User attrs come back as JSON values; anything missing or non-numeric becomes NaN."""
    if isinstance(value, bool) or value is None:
        return math.nan if value is None else float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _feasible(trial: optuna.trial.FrozenTrial) -> bool:
    constraints = trial.system_attrs.get("constraints")
    return constraints is None or all(c <= 0 for c in constraints)


def _full_budget(rec: TrialRecord, attrs: dict[str, Any], state: str) -> bool:
    if state != "COMPLETE" or rec.rejected:
        return False
    if "full_budget" in attrs:
        return rec.full_budget
    epochs, planned = rec.epochs, rec.epochs_planned
    return not (epochs is not None and planned is not None and epochs < planned)  # unknown budget counts as full


def outcome_label(state: str, rec: TrialRecord) -> str:
    """What happened to a trial, for tables and legends: 'complete', 'pruned (pruner)', 'stopped early
    (scheduler)', 'rejected: over budget', 'failed', 'failed (interrupted)', 'running', 'waiting'."""
    if state == "COMPLETE":
        return "rejected: over budget" if rec.rejected else "complete"
    if state == "PRUNED":
        return "stopped early (scheduler)" if rec.stopped_by == "scheduler" else "pruned"
    if state == "FAIL":
        return "failed (interrupted)" if rec.interrupted else "failed"
    return state.lower()


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial of an open study (columns: :data:`BASE_COLUMNS` then the Optuna params)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    param_names: list[str] = []
    measured: list[str] = []  # a benchmark table's cost columns the trials recorded
    check_stored_study(study)
    for t in stored_trials(study):
        a = t.user_attrs
        check_stored_trial(study, t)
        check_stored_arch(study, t)
        rec = TrialRecord.from_attrs(a)
        state = t.state.name
        ref = rec.reference or None
        start, end = t.datetime_start, t.datetime_complete
        duration = (end - start).total_seconds() if start and end else _num(rec.wall_time_s)
        row: dict[str, Any] = {
            "number": t.number,
            "state": state,
            "outcome": outcome_label(state, rec),
            "name": ref if ref is not None else f"#{t.number}",
            "arch": rec.arch,
            "reference": ref,
            "is_reference": ref is not None,
            "macs": _num(rec.macs),
            "params": _num(rec.params),
            "latency_ms": _num(rec.latency_ms),
            "val_acc": _num(rec.val_acc) if not rec.rejected else math.nan,
            "val_n": _num(rec.val_n),
            "val_ci_low": math.nan,
            "val_ci_high": math.nan,
            "val_acc_final": _num(rec.val_acc_final),
            "test_acc": _num(rec.test_acc),
            "test_n": _num(rec.test_n),
            "test_ci_low": math.nan,
            "test_ci_high": math.nan,
            "reward": _num(rec.reward),
            "epochs": _num(rec.epochs),
            "epochs_planned": _num(rec.epochs_planned),
            "full_budget": _full_budget(rec, a, state),
            "rejected": rec.rejected,
            "stopped_by": rec.stopped_by,
            "feasible": _feasible(t),
            "duration": duration,
            "wall_time_s": _num(rec.wall_time_s),
            "images_per_s": _num(rec.images_per_s),
            "device": rec.device,
            "threads": _num(rec.threads),
            "cpu_kernels": rec.cpu_kernels,
            "seed": rec.seed,
            "cached": rec.cached,
            "retry_of": _num(rec.retry_of),
            "fail_reason": rec.fail_reason if state == "FAIL" else None,
            "macs_resolution": _num(rec.macs_resolution),
            "datetime_start": start,
            "datetime_complete": end,
        }
        for k in TABLE_COST_COLUMNS:
            if rec.extra.get(k) is not None:
                row[k] = _num(rec.extra[k])
                if k not in measured:
                    measured.append(k)
        for k, v in t.params.items():
            if k not in param_names:
                param_names.append(k)
            row[k if k not in BASE_COLUMNS else f"param_{k}"] = v
        rows.append(row)
    measured.sort(key=TABLE_COST_COLUMNS.index)
    cols = list(BASE_COLUMNS) + measured + [k if k not in BASE_COLUMNS else f"param_{k}" for k in param_names]
    df = pd.DataFrame(rows, columns=cols)
    df["number"] = df["number"].astype("int64")
    add_intervals(df)
    for col in ("is_reference", "full_budget", "feasible", "cached"):
        df[col] = df[col].astype(bool)
    attrs = study.user_attrs
    df.attrs.update(
        study_name=study.study_name,
        objective=attrs.get("objective"),
        metric_names=list(attrs.get("metric_names") or []),
        config=attrs.get("config") or {},
        last_stop=attrs.get("last_stop"),  # why the latest search run ended (written by the search at its end)
        directions=[d.name.lower() for d in study.directions],
        choice_columns=[k if k not in BASE_COLUMNS else f"param_{k}" for k in param_names],
    )
    return df


def damaged(study: Any, key: str, value: Any, allowed: str, trial: int | None = None) -> ConfigError:
    """The one line for a stored value that is not what nas-harness writes (changed behind its back): it names
    the storage (without its password), the study, the trial (where it is a trial's) and the key, the value
    and what is allowed (worded as :func:`nas_harness.records.check_study_attrs` words a study attribute).
    Every reader of stored trial attributes, and of keys inside a study attribute, raises it."""
    where = f"study {study.study_name!r}" + (f", trial {trial}" if trial is not None else "")
    return ConfigError(f"storage {storage_label(study)}: {where}: stored {key} = {_short(value)} is not {allowed} "
                       "(changed outside nas-harness?)")


def check_stored_trial(study: Any, trial: Any) -> None:
    """Refuse (:func:`damaged`) a trial whose stored record has a value of the wrong type or range
    (:func:`nas_harness.records.stored_problem`)."""
    problem = stored_problem(trial.user_attrs)
    if problem is not None:
        raise damaged(study, *problem, trial=trial.number)


def check_stored_arch(study: Any, trial: Any) -> None:
    """Refuse (:func:`damaged`) a finished search trial whose stored arch string does not parse: reports rank it,
    print it and offer commands built from it."""
    arch = trial.user_attrs.get("arch")
    if isinstance(arch, str) and trial.state.name in ("COMPLETE", "PRUNED"):
        from nas_harness.arch import parse_arch

        try:
            parse_arch(arch)
        except ValueError:
            raise damaged(study, "arch", arch, "an arch string", trial=trial.number) from None


def check_stored_study(study: Any) -> None:
    """Refuse (one ConfigError line naming storage, study and key) a study attribute that is not what
    nas-harness stores (:func:`nas_harness.records.check_study_attrs`)."""
    from nas_harness.records import check_study_attrs

    check_study_attrs(study)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def add_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """Fill ``val_ci_low/high`` and ``test_ci_low/high``: the Wilson 95 % interval of each accuracy from its
    split size (:func:`nas_harness.results.stats.accuracy_interval`); NaN where the size was not recorded."""
    from nas_harness.results.stats import accuracy_intervals

    for split in ("val", "test"):
        if len(df):
            lo, hi = accuracy_intervals(df[f"{split}_acc"].tolist(), df[f"{split}_n"].tolist())
        else:
            lo = hi = []
        df[f"{split}_ci_low"] = lo
        df[f"{split}_ci_high"] = hi
    return df


def study_frame(source: str | Path | StudySource, study_name: str | None = None) -> pd.DataFrame:
    """Load a study (results folder, SQLite/journal file or URL) into a DataFrame; see :func:`trials_frame`.

    ``df.attrs`` carries the study name, storage label, objective, metric names, directions and config.
    """
    src = source if isinstance(source, StudySource) else resolve_source(source, study_name)
    df = trials_frame(load_study(src))
    df.attrs.update(storage=src.label, folder=str(src.folder) if src.folder else None)
    return df


def choice_columns(df: pd.DataFrame) -> list[str]:
    """The per-stage choice (Optuna param) columns of a frame."""
    cols = df.attrs.get("choice_columns")
    if cols is None:
        cols = [c for c in df.columns if c not in BASE_COLUMNS]
    return [c for c in cols if c in df.columns]


def export_frame(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the frame as CSV or Parquet, chosen by the file suffix (``.csv`` / ``.parquet``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ConfigError(f"output: unsupported suffix '{path.suffix}' (allowed: .csv, .parquet)")
    path.parent.mkdir(parents=True, exist_ok=True)
    out = df.copy()
    out.attrs = {}  # attrs hold nested dicts that Parquet metadata cannot always serialise
    if suffix == ".csv":
        with write_output(path, "w") as f:
            out.to_csv(f, index=False)
    else:
        # Choice columns may mix ints and floats across trials; object columns of mixed scalars confuse
        # Arrow, so store them as strings only when they are genuinely mixed.
        for col in out.columns:
            if out[col].dtype == object:
                kinds = {type(v) for v in out[col].dropna()}
                if len(kinds) > 1:
                    out[col] = out[col].map(lambda v: None if v is None else str(v))
        with write_output(path, "wb") as f:
            out.to_parquet(f, index=False)
    return path


def accuracy_note(df: pd.DataFrame) -> str:
    """How a study's accuracies must be read, from its evaluator ("" for accuracies trained from scratch; e.g.
    a supernet study's are inherited-weight estimates)."""
    ev = (df.attrs.get("config") or {}).get("evaluator")
    kind = ev.get("kind") if isinstance(ev, dict) else None
    if not isinstance(kind, str) or kind in ("", "train"):
        return ""
    from nas_harness.evaluators import lookup

    try:
        factory = lookup(kind).factory
    except ConfigError:
        return f"scored by evaluator {kind!r}"
    return str(getattr(factory, "accuracy_note", "") or f"scored by evaluator {kind!r}")
