"""Study-level attributes: the one place they are written, and what each must be.

Trial attributes have :class:`~nas_harness.records.TrialRecord`; a study's own attributes (its comparability
record, stored settings, objective, the recipe of a fixed-job store, ...) are declared here.  Writers go through
:func:`set_study_attrs`, which refuses an undeclared name or a value of the wrong type (a programming error,
``ValueError``); readers call :func:`check_study_attrs`, which refuses a stored value that is not what
nas-harness writes (a file changed outside nas-harness: one :class:`~nas_harness.errors.ConfigError` line naming
the storage, the study and the key).
"""

from __future__ import annotations

from typing import Any

from nas_harness.errors import ConfigError

__all__ = ["STUDY_ATTRS", "check_study_attrs", "set_study_attrs", "storage_label"]

#: name -> (Python type of the stored JSON value, how the error names it, what it is).
STUDY_ATTRS: dict[str, tuple[type, str, str]] = {
    # search studies (study/search.py) and the scaling search
    "comparable": (dict, "a table", "what makes two runs' trials comparable; checked on every resume"),
    "config": (dict, "a table", "the validated file the study (or fixed-job store) was made from, redacted"),
    "objective": (str, "text", "the objective kind ('scaling' for a scaling search, the store kind for jobs)"),
    "metric_names": (list, "a list of names", "the names of the study's values, in order"),
    "base_arch": (str, "an arch string", "the base arch a scaling search scales"),
    "sampler_streams": (int, "an integer", "sampler seeds claimed so far (each run's samplers seed + offset + i)"),
    "last_stop": (dict, "a table", "why the latest run ended, when, and the [run] limits it was asked for "
                  "({'reason', 'at', 'run'})"),
    # fixed-job stores (confirm, fidelity, ablations, scaling curves: evaluation/store.py)
    "recipe": (dict, "a table", "the recipe every stored run was made with"),
    "kind": (str, "text", "what the store holds: confirm, fidelity, ablation, scaling_curves"),
    "format_version": (int, "an integer", "the store's format"),
    "archs": (dict, "a table of arch strings", "group (variant, job) -> its arch string"),
    "source_study": (str, "a study name", "the study a confirm/fidelity store re-evaluates"),
    "proxy_recipe": (dict, "a table", "fidelity: the proxy recipe compared against"),
}


def _ok(key: str, value: Any) -> bool:
    kind = STUDY_ATTRS[key][0]
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if not isinstance(value, kind):
        return False
    if key == "metric_names":
        return all(isinstance(v, str) for v in value)
    if key == "archs":
        return all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    return True


def set_study_attrs(study: Any, **attrs: Any) -> None:
    """Store study attributes; each name must be declared in :data:`STUDY_ATTRS` and its value of that type
    (ValueError otherwise: a bug, not a user error)."""
    for key, value in attrs.items():
        if key not in STUDY_ATTRS:
            raise ValueError(f"study attribute {key!r} is not declared in nas_harness.records.STUDY_ATTRS")
        if not _ok(key, value):
            raise ValueError(f"study attribute {key!r}: {value!r} is not {STUDY_ATTRS[key][1]}")
    for key, value in attrs.items():
        study.set_user_attr(key, value)


def storage_label(study: Any) -> str:
    """The storage of an open study as it may be shown: a URL without its password, or a journal file."""
    from nas_harness.records._storage import redact

    storage = study._storage
    for layer in (storage, getattr(storage, "_backend", None)):  # Optuna's cache wraps the RDB storage
        url = getattr(layer, "url", None) or getattr(getattr(layer, "_backend", None), "_file_path", None)
        if url:
            return redact(str(url))
    return type(storage).__name__


def check_study_attrs(study: Any, keys: tuple[str, ...] | None = None) -> None:
    """Refuse (one ConfigError line naming storage, study and key) a stored study attribute that is not what
    nas-harness writes; ``keys``: only these (default: every declared one present)."""
    attrs = study.user_attrs
    for key in keys or tuple(STUDY_ATTRS):
        value = attrs.get(key)
        if value is not None and not _ok(key, value):
            text = repr(value)
            text = text if len(text) <= 60 else text[:57] + "..."
            raise ConfigError(f"storage {storage_label(study)}: study {study.study_name!r}: stored {key} = {text} "
                              f"is not {STUDY_ATTRS[key][1]} (changed outside nas-harness?)")
