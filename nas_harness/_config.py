"""Shared plumbing for the study-file tables that map onto frozen dataclasses (``[data]``, ``[train]``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from nas_harness.errors import ConfigError

T = TypeVar("T")


def dataclass_from_table(cls: type[T], d: Mapping[str, Any], where: str) -> T:
    """An instance of ``cls`` with the table's values over the field defaults, *not yet validated*.

    Unknown keys raise ConfigError naming ``where.key`` and the allowed keys, so a typo never silently
    falls back to a default.  Bypasses ``__init__`` so the caller can normalise and validate with ``where``.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where} must be a table/dict, got {type(d).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} is not a known option; allowed: {', '.join(names)}")
    obj = cls.__new__(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        object.__setattr__(obj, f.name, d.get(f.name, default))
    return obj
