"""One validation layer for what the command line is given, and one place that words environment failures.

- **Flags**: argparse ``type=`` functions.  :func:`number` / :func:`integer` refuse non-finite and out-of-range
  values (the range is stated in the message), :func:`text` refuses control characters and over-long strings,
  :func:`study_name` is a study name (``NAME_RULE``), and :func:`config_flag` takes the type and range of a
  study-file key from its model, so a flag and the key it overrides accept exactly the same values.  argparse
  names the flag (``argument --phi: expected a finite number in [0, 10], got 'nan'``) and exits 2.
- **Outputs**: :func:`output_dir` / :func:`output_file` refuse, *before anything is created*, a folder that
  cannot be created or written (read-only mount, a file in the way, a name too long); if the command then
  fails anyway, the files and folders it added there are removed, so a failed command leaves no half-written
  results behind (storage files are never touched).
- **Environment errors**: :func:`environment_error` turns a full disk, a read-only or forbidden path, or a
  name too long (an ``OSError`` or SQLite's "database or disk is full" anywhere in the exception chain) into
  ONE line: what happened, which file, and what is kept.  Commands say what is kept with :func:`keep`.
- **Arch size**: :func:`check_arch_size` bounds what the MAC counter and the model builder are asked to do
  (an arch string with ``r10000000`` would keep the counter busy for minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sqlite3
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nas_harness._config import check_dir_writable, check_outputs, first_existing, refuse_special_outputs
from nas_harness.errors import ConfigError, environment_line, exception_chain

#: Bounds of what ``info``/``scale``/``export --family`` count or build (B7 has 55 blocks and 2,560 channels).
MAX_BLOCKS = 1_000
MAX_CHANNELS = 100_000
MAX_KERNEL = 63
MAX_RESOLUTION = 16_384
#: ``info --fvcore`` builds the model: at most this many parameters (4 GB of float32 weights).
MAX_BUILD_PARAMS = 1_000_000_000


# ---------------------------------------------------------------------------------------------- flag types

def _fmt(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_fmt(lo)}, {_fmt(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_fmt(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {_fmt(hi)}"
    return ""


def _short(text: str, limit: int = 40) -> str:
    from nas_harness._config import redact_url

    r = repr(redact_url(text))
    return r if len(r) <= limit else r[: limit - 3] + "..."


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False,
           integer: bool = False) -> Callable[[str], Any]:
    """argparse ``type=``: a finite number (or an integer) inside the stated range."""
    kind = "an integer" if integer else "a finite number"
    allowed = " ".join(x for x in (kind, _interval(lo, hi, lo_open, hi_open)) if x)

    def parse(text: str) -> Any:
        try:
            value: Any = int(text) if integer else float(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {_short(text)}") from None
        ok = (integer or math.isfinite(value)) and not (
            (lo is not None and (value < lo or (lo_open and value == lo)))
            or (hi is not None and (value > hi or (hi_open and value == hi))))
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {_short(text)}")
        return value

    parse.__name__ = "integer" if integer else "number"
    return parse


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse ``type=``: an integer in ``[lo, hi]``."""
    return number(lo, hi, integer=True)


def text(max_length: int = 4096, *, empty: bool = False) -> Callable[[str], str]:
    """argparse ``type=``: a string without control characters, at most ``max_length`` characters."""

    def parse(value: str) -> str:
        if not empty and not value.strip():
            raise argparse.ArgumentTypeError("expected a non-empty value")
        if len(value) > max_length:
            raise argparse.ArgumentTypeError(f"{len(value):,} characters; at most {max_length:,}")
        from nas_harness._config import UNSAFE_RULE, unsafe_chars

        if unsafe_chars(value):
            raise argparse.ArgumentTypeError(f"{_short(value)} contains {UNSAFE_RULE}")
        return value

    parse.__name__ = "text"
    return parse


def study_name(value: str) -> str:
    """argparse ``type=``: a study name (see ``nas_harness._config.NAME_RULE``)."""
    from nas_harness._config import NAME_PATTERN, NAME_RULE

    if not NAME_PATTERN.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{_short(value)} is not a valid study name: {NAME_RULE}")
    return value


def config_flag(model: str, key: str) -> Callable[[str], Any]:
    """argparse ``type=`` for a flag that overrides a study-file key: the key's own type and range.

    ``model`` is ``"module:Class"`` (imported when the flag is given, so building the parser stays cheap).
    """

    def parse(value: str) -> Any:
        return _field_type(model, key)(value)

    parse.__name__ = key
    return parse


def _field_type(model: str, key: str) -> Callable[[str], Any]:
    import importlib

    import annotated_types as at

    module, _, cls = model.partition(":")
    field = getattr(importlib.import_module(module), cls).model_fields[key]
    lo = hi = None
    lo_open = hi_open = False
    for m in field.metadata:
        if isinstance(m, at.Ge):
            lo = m.ge
        elif isinstance(m, at.Gt):
            lo, lo_open = m.gt, True
        elif isinstance(m, at.Le):
            hi = m.le
        elif isinstance(m, at.Lt):
            hi, hi_open = m.lt, True
    args = [a for a in getattr(field.annotation, "__args__", (field.annotation,)) if a is not type(None)]
    if args and args[0] is str:
        return text()
    return number(lo, hi, lo_open=lo_open, hi_open=hi_open, integer=bool(args) and args[0] is int)


# ---------------------------------------------------------------------------------------------- outputs

def _files_under(folder: Path) -> set[Path]:
    if not folder.is_dir():
        return set()
    out: set[Path] = set()
    for root, dirs, files in os.walk(folder):
        out.update(Path(root) / f for f in files)
        out.update(Path(root) / d for d in dirs)
    return out


#: What a failed command may remove again: outputs it writes, never storage files (*.db, *.log, WAL, locks).
_OUTPUT_SUFFIXES = (".png", ".svg", ".pdf", ".md", ".html", ".csv", ".parquet", ".json", ".arch", ".py", ".tmp")

@contextlib.contextmanager
def output_dir(path: str | Path, what: str) -> Iterator[Path]:
    """Check that ``path`` can be created and written; if the body fails, remove the output files and the
    (then empty) folders it added under ``path``."""
    p = Path(path)
    check_dir_writable(p, what)
    first = first_existing(p)
    before = _files_under(p) if first == p else set()
    refuse_special_outputs(p, what)  # a FIFO where an output goes: refused before anything is written
    try:
        yield p
    except BaseException:
        _undo(p, first, before)
        raise


def _undo(p: Path, first: Path, before: set[Path]) -> None:
    with contextlib.suppress(OSError):
        added = sorted(_files_under(p) - before, key=lambda q: len(q.parts), reverse=True)
        for q in added:
            with contextlib.suppress(OSError):
                if q.is_dir() and not q.is_symlink():
                    q.rmdir()  # only when empty
                elif q.suffix.lower() in _OUTPUT_SUFFIXES:
                    q.unlink()
        created = p
        while created != first and created.parent != created:
            with contextlib.suppress(OSError):
                created.rmdir()
            created = created.parent


def output_file(path: str | Path, what: str) -> Path:
    """Refuse, without creating anything, an output file that cannot be written (a folder in its place, a FIFO,
    device or socket, a read-only or missing-and-uncreatable parent)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{what}: {str(p)!r} is a folder; give a file name")
    check_outputs([p], what)
    check_dir_writable(p.parent if str(p.parent) else Path("."), what, target=p)
    return p


# ---------------------------------------------------------------------------------------------- arch size

def check_arch_size(arch: Any, what: str, resolution: int | None = None) -> None:
    """Refuse an arch (or input size) larger than anything the harness is meant to count or build."""
    blocks = sum(s.repeats for s in arch.stages)
    widest = max([arch.stem_channels, arch.head_channels] + [s.channels for s in arch.stages])
    kernel = max(s.kernel for s in arch.stages)
    expanded = max(s.channels * s.expand for s in arch.stages)
    if blocks > MAX_BLOCKS:
        raise ConfigError(f"{what}: {blocks:,} blocks; at most {MAX_BLOCKS:,} are counted (B7 has 55)")
    if widest > MAX_CHANNELS or expanded > 64 * MAX_CHANNELS:
        raise ConfigError(f"{what}: {int(max(widest, expanded)):,} channels; at most {MAX_CHANNELS:,} per layer")
    if kernel > MAX_KERNEL:
        raise ConfigError(f"{what}: kernel {kernel}; at most {MAX_KERNEL}")
    if resolution is not None and resolution > MAX_RESOLUTION:
        raise ConfigError(f"{what}: resolution {resolution:,} px; at most {MAX_RESOLUTION:,}")


# ---------------------------------------------------------------------------------------------- environment

def storage_file(url: str) -> str:
    """The file of a SQLite/journal storage URL (what a full-disk message names), else the redacted URL."""
    from nas_harness.records import redact
    from nas_harness.records._storage import journal_path, sqlite_path

    path = sqlite_path(url) or journal_path(url)
    return str(path) if path is not None else redact(url)


def keep(args: argparse.Namespace, *, storage: str | None = None, kept: Callable[[], str] | str | None = None,
         writing: str | Path | None = None) -> None:
    """Tell :func:`environment_error` what this command writes to and what survives a failure."""
    if storage is not None:
        args._io_storage = storage
    if kept is not None:
        args._io_kept = kept
    if writing is not None:
        args._io_writing = str(writing)


def environment_error(exc: BaseException, args: argparse.Namespace) -> str | None:
    """ONE line for a full disk / read-only or forbidden path anywhere in ``exc``'s chain, else None: what
    happened, to which file (the storage for a database error; else the file, else the command's output),
    and what is kept (:func:`keep`).  The wording is :func:`nas_harness.errors.environment_line`'s."""
    storage = getattr(args, "_io_storage", None)
    file = getattr(args, "_io_writing", None)
    if file is None and storage is not None and any(isinstance(e, sqlite3.Error) for e in exception_chain(exc)):
        file = storage
    line = environment_line(exc, file, path=Path(storage) if storage and "://" not in storage else None)
    if line is None:
        return None
    kept = getattr(args, "_io_kept", None)
    if callable(kept):
        try:
            kept = kept()
        except Exception:  # what is kept is best effort: the failure itself is the message
            kept = None
    if kept:
        line += f"; {kept}"
    return " ".join(line.split())


def kept_in_storage(url: str, study: str, noun: str = "trial",
                    states: tuple[str, ...] = ("COMPLETE", "PRUNED")) -> str:
    """'the N finished trials are safe in <storage>; ...': what a failed run leaves, for :func:`keep`."""
    from nas_harness.records import redact

    n = finished_trials(url, study, states)
    what = (f"the finished {noun}s are" if n is None else
            f"{n} finished {noun}(s) are" if n.startswith("at least") else
            f"the {n} finished {noun}{'' if n == '1' else 's'} {'is' if n == '1' else 'are'}")
    return f"{what} safe in {redact(url)}; free some space and run the same command again to continue"


def finished_trials(url: str, study: str, states: tuple[str, ...] = ("COMPLETE", "PRUNED")) -> str | None:
    """'N' finished trials of ``study`` in a storage, read the way every reader reads it (read-only, never
    writing: on a full disk too), or None when they cannot be counted."""
    import optuna

    from nas_harness.records import open_storage

    try:
        s = optuna.load_study(study_name=study, storage=open_storage(url, create=False))
        return str(sum(t.state.name in states for t in s.get_trials(deepcopy=False)))
    except Exception:  # a full disk: the storage layer reads its file directly, writing nothing
        from nas_harness.records._storage import finished_in_file

        return finished_in_file(url, study, states)


# ---------------------------------------------------------------------------------------------- warnings

@contextlib.contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Warnings on the command line are one line each: ``nas-harness CMD: warning: <message>``, written above a
    progress bar that is running (through tqdm, which clears and redraws it) instead of into it."""

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        text_ = " ".join(str(message).split())
        out = f"nas-harness {command}: warning: {text_}"
        tqdm = sys.modules.get("tqdm")  # a bar can only be running if tqdm is imported
        if tqdm is not None and getattr(tqdm.tqdm, "_instances", None):
            tqdm.tqdm.write(out, file=file or sys.stderr)
        else:
            print(out, file=file or sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield
