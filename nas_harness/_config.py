"""The one config idiom: every study-file, ablation-file and recipe table is a frozen pydantic model.

What every table gets from :class:`ConfigModel`:

- unknown keys are errors (a typo never silently falls back to a default);
- numbers are strict and finite (``Num``: an int or float, never a bool, string, NaN or inf) and every field
  states its range in its ``Field``;
- strings (``Text``, ``Name``) carry no control characters (a NUL byte or an escape sequence in a study
  name would reach file names, logs and databases);
- any validation problem surfaces as ONE :class:`~nas_harness.errors.ConfigError` line naming the key path
  (``train.lr``, ``variant.k5.overrides[0].stage``) and what is allowed, which the CLI turns into exit 2;
- a JSON Schema for editors (:func:`json_schema`).

Cross-field rules raise :func:`bad` from a ``model_validator``; options that have no effect in their context
are declared once with :func:`inert` (``{"alpha": lambda t: t.constraint != "custom"}``) and refused if given.
:func:`read_toml` reads a file defensively: unreadable, binary, non-UTF-8, too deep or too large input is one
clear line naming the file; :func:`read_file` / :func:`open_regular` are the one way the harness reads any file
(a FIFO, a device such as ``/dev/zero`` or a folder is refused in one line instead of blocking or reading
forever, and every read is capped), and :func:`open_lock` the one way it opens a lock or side file it holds an
``flock`` on (the same refusal); :func:`check_dir_writable` refuses an output folder that cannot be created or
written before anything is created.  :func:`write_output` / :func:`write_text` are the one way the harness writes
an output file (a temp file in the same folder, renamed into place: what is at the path is never opened, so a
FIFO there can never block a write), and :func:`check_outputs` / :func:`refuse_special_outputs` refuse an output
that is a FIFO, device or socket before anything is written.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import re
import stat
import tempfile
import tomllib
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, AllowInfNan, BaseModel, ConfigDict, Strict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from nas_harness.errors import ConfigError, os_reason, read_only_file_system

M = TypeVar("M", bound="ConfigModel")
Rules = dict[str, Callable[[Any], bool]]
_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("nas_config_depth", default=0)
_WHERE: contextvars.ContextVar[str] = contextvars.ContextVar("nas_config_where", default="")

#: Largest study/ablation file read (bytes); real ones are a few KB.
#: The default parent folder of every output (``run.results_dir``; bench, doctor and latency tables too).
RESULTS_DIR = "results"
MAX_FILE_BYTES = 1 << 20
#: Deepest table nesting accepted in a TOML file (study files use 3 levels).
MAX_DEPTH = 16


# ---------------------------------------------------------------------------------------------- text safety

#: Characters refused in every name, path and URL: C0 controls (but tab), DEL, C1 controls, the line and paragraph
#: separators, and the bidirectional overrides/isolates/marks that make text display as something it is not.
_UNSAFE = frozenset([*range(0, 9), *range(10, 32), 127, *range(0x80, 0xA0), 0x061C, 0x200E, 0x200F, 0x2028, 0x2029,
                     *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
UNSAFE_RULE = "control characters (NUL, newline, escapes, C1) or bidirectional overrides"


def unsafe_chars(value: str) -> bool:
    """True when ``value`` holds a character of :data:`_UNSAFE` (see :data:`UNSAFE_RULE`)."""
    return any(ord(c) in _UNSAFE for c in value)


# The password of a URL's user info runs to the LAST '@' (a raw '@', ':', '/' or space in it is still the password;
# a URL without a password but with an '@' further on is over-redacted, never under-redacted).
_URL_PASSWORD = re.compile(r"^(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@?#]*:)(?P<pw>.*)(?P<tail>@[^@]*)$", re.DOTALL)
# A secret in the query string (``?password=X``, libpq's ``sslpassword``, ``&token=...``).
_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>[?&;](?:[a-z_]*pass(?:word|wd)?|pwd|secret|token|api_?key)=)(?P<value>[^&;#]*)")


def redact_url(url: str) -> str:
    """``url`` with every password replaced by ``***``: the user info's (``postgresql://user:secret@host/db``,
    also one holding a raw '@' or a space) and the query string's (``?password=secret``, ``&sslpassword=``)."""
    text = url or ""
    m = _URL_PASSWORD.match(text)
    if m and m["pw"]:
        text = f"{m['head']}***{m['tail']}"
    return _QUERY_SECRET.sub(lambda q: q["key"] + ("***" if q["value"] else ""), text) if text else url


def _secrets(url: str) -> set[str]:
    """Every password a URL holds, as written and percent-decoded."""
    from urllib.parse import unquote, unquote_plus

    found = []
    m = _URL_PASSWORD.match(url or "")
    if m and m["pw"]:
        found.append(m["pw"])
    found += [q["value"] for q in _QUERY_SECRET.finditer(url or "") if q["value"]]
    out = set()
    for secret in {form for raw in found for form in (raw, unquote(raw), unquote_plus(raw))}:
        out.add(secret)
        # a raw '@' makes drivers split the password: its pieces then turn up as host or user names
        segments = secret.split("@")
        out |= {"@".join(segments[a:b]) for a in range(len(segments)) for b in range(a + 1, len(segments) + 1)
                if len("@".join(segments[a:b])) >= 3}
        out |= {piece for piece in re.split(r"[\s:/]", secret) if len(piece) >= 4}
    return out - {""}


def scrub_url(text: str, url: str) -> str:
    """``text`` with every password of ``url`` (raw, percent-decoded, and the pieces a driver makes of one with a
    raw '@' or space) replaced by ``***``, and any URL in it redacted."""
    for secret in sorted(_secrets(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return _QUERY_SECRET.sub(lambda q: q["key"] + ("***" if q["value"] else ""), text)


def _no_control(value: str) -> str:
    if unsafe_chars(value):
        raise PydanticCustomError("control_chars", "must not contain " + UNSAFE_RULE)
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise PydanticCustomError("finite_number", "must be a finite number")
    return value


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # always .fullmatch: '$' would accept a final newline
NAME_RULE = "1-64 letters, digits, '_', '.', '-', starting with a letter or digit"


def _name(value: str) -> str:
    if not NAME_PATTERN.fullmatch(value):
        raise PydanticCustomError("name", "{value} is not a valid name: {rule}",
                                  {"value": _short(value), "rule": NAME_RULE})
    return value


#: A strict, finite number (an int is accepted and becomes a float).
Num = Annotated[float, Strict(), AllowInfNan(False), AfterValidator(_finite)]
#: A strict integer (no bools, no floats, no strings).
Int = Annotated[int, Strict()]
#: A strict boolean.
Bool = Annotated[bool, Strict()]
#: A string without control characters.
Text = Annotated[str, Strict(), AfterValidator(_no_control)]
#: A name that becomes a folder, a study name and a database key (see NAME_RULE).
Name = Annotated[str, Strict(), AfterValidator(_name)]


class ConfigModel(BaseModel):
    """Base of every config table: frozen, unknown keys refused, ConfigError on any bad value."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False, hide_input_in_errors=False,
                              arbitrary_types_allowed=True)

    #: Options that have no effect in the table's context: name -> predicate(table) that is True when inert
    #: (refused when given with a value other than the default).
    _inert: ClassVar[Rules] = {}
    #: Renamed keys: old name -> hint (old files get a helpful line instead of "unknown key").
    _renamed: ClassVar[dict[str, str]] = {}

    def __init__(self, **data: Any) -> None:
        # A model with its own __init__ is also initialised this way when nested in another one: only the
        # outermost call turns pydantic's error into the one-line ConfigError (with the caller's key prefix).
        token = _DEPTH.set(_DEPTH.get() + 1)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            if _DEPTH.get() > 1:
                raise
            raise ConfigError(printable(format_error(exc, type(self), _WHERE.get()))) from None
        finally:
            _DEPTH.reset(token)

    @classmethod
    def from_dict(cls: type[M], d: Any, where: str = "") -> M:
        """Validate a table read from a file; errors name ``<where>.<key>``."""
        if not isinstance(d, Mapping):
            raise ConfigError(printable(f"{where or 'file'}: expected a table, got {_kind(d)}"))
        token = _WHERE.set(where)
        try:
            return cls(**{str(k): v for k, v in d.items()})
        finally:
            _WHERE.reset(token)

    def replace(self: M, **changes: Any) -> M:
        """A validated copy with some fields changed."""
        return type(self)(**{**{k: getattr(self, k) for k in type(self).model_fields}, **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists); ``from_dict(to_dict())`` gives an equal object."""
        return self.model_dump(mode="json")

    @model_validator(mode="before")
    @classmethod
    def _refuse_renamed(cls, d: Any) -> Any:
        if isinstance(d, Mapping):
            for old, hint in cls._renamed.items():
                if old in d:
                    raise bad(old, hint)
        return d

    @model_validator(mode="after")
    def _refuse_inert(self) -> Any:
        for name, is_inert in type(self)._inert.items():
            field = type(self).model_fields[name]
            if (name in self.model_fields_set and getattr(self, name) != field.get_default(call_default_factory=True)
                    and is_inert(self)):
                raise bad(name, "{value} has no effect here: it {why}; remove it",
                          value=_short(getattr(self, name)), why=_inert_reason(type(self), name))
        return self


def _inert_reason(cls: type, name: str) -> str:
    doc = (cls.model_fields[name].description or "") if name in getattr(cls, "model_fields", {}) else ""
    return doc or "see the key table"


def inert(**rules: Callable[[Any], bool]) -> Rules:
    """Declare options that have no effect when ``rule(table)`` is True (the field description says when
    the option applies, and is quoted in the error)."""
    return dict(rules)


def allowed(text: str) -> dict[str, str]:
    """``Field(json_schema_extra=allowed("auto, an integer >= 1"))``: the wording of a field's error line."""
    return {"allowed": text}


def bad(field: str, message: str, **ctx: Any) -> PydanticCustomError:
    """An error about ``field`` of the table being validated, for ``raise`` inside a validator
    (``field=""``: the table itself, or the field a field validator checks)."""
    return PydanticCustomError("config", message, {"field": field, **ctx})


def distinct(v: Any, what: str = "entries") -> Any:
    """For a ``mode="before"`` field validator: a list becomes a tuple, refused if it repeats an entry."""
    if isinstance(v, list):
        if len(set(map(repr, v))) != len(v):
            raise bad("", f"{what} must be distinct, got {_short(v)}")
        return tuple(v)
    return v


def restate(exc: ConfigError) -> PydanticCustomError:
    """Re-raise a ConfigError from a nested check (whose message already names its full key path)."""
    return PydanticCustomError("config", str(exc).replace("{", "{{").replace("}", "}}"), {"absolute": True})


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _kind(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(v), type(v).__name__)


def _short(v: Any, limit: int = 60) -> str:
    text = repr(redact_url(v) if isinstance(v, str) else v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _submodel(annotation: Any) -> tuple[str, Any]:
    """('model', cls) | ('dict', value annotation) | ('list', item annotation) | ('', None) for a field type."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _submodel(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "model", annotation
    if origin in (dict, Mapping) or annotation is dict:
        args = typing.get_args(annotation)
        return "dict", args[1] if len(args) == 2 else None
    if origin in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return "list", args[0] if args else None
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        for arg in typing.get_args(annotation):
            kind, sub = _submodel(arg)
            if kind:
                return kind, sub
    return "", None


def _path(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[str, Any]:
    """The user-facing key path of a pydantic error location, skipping union-member tags."""
    parts: list[str] = []
    kind, current = "model", model
    field = None
    for item in loc:
        if kind == "model" and current is not None and isinstance(item, str) and item in current.model_fields:
            parts.append(item)
            field = current.model_fields[item]
            kind, current = _submodel(field.annotation)
        elif kind == "dict" and isinstance(item, str):
            parts.append(item)
            kind, current = _submodel(current) if current is not None else ("", None)
        elif kind == "list" and isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
            kind, current = _submodel(current) if current is not None else ("", None)
        elif isinstance(item, str) and kind == "" and not parts:
            parts.append(item)
        # else: a union member tag such as 'int' or "literal['auto']": not part of the user's path
    return ".".join(parts), field


def printable(text: str, limit: int = 1000) -> str:
    """``text`` on one printable line: control characters and line separators (which a quoted TOML key may
    hold) are escaped as in ``repr``, and the whole is cut at ``limit`` characters."""
    out = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _key_text(key: Any) -> str:
    """A key as the user wrote it, shortened when it is long (an unknown key can be anything)."""
    text = str(key)
    return text if len(text) <= 64 else text[:61] + "..."


def format_error(exc: ValidationError, model: type[BaseModel], where: str = "") -> str:
    """ONE line for the first problem of a pydantic ValidationError: key path, the value, what is allowed."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    path, field = _path(model, tuple(err["loc"]))
    ctx = err.get("ctx") or {}
    if err["type"] == "config":
        if ctx.get("absolute"):  # the message names its own key path (relative to the outermost table)
            return f"{where}.{err['msg']}" if where else err["msg"]
        key = _join(path, ctx["field"]) if ctx.get("field") else path
        key = _join(where, key)
        return f"{key}: {err['msg']}" if key else err["msg"]
    full = _join(where, path) if path else (where or "file")
    if err["type"] == "extra_forbidden":
        owner = model
        parent, _ = _path(model, tuple(err["loc"][:-1]))
        if parent:
            sub = _walk(model, parent)
            owner = sub if sub is not None else model
        key = _join(where, _join(parent, _key_text(err["loc"][-1])))
        return f"{key}: unknown key; allowed keys: {', '.join(owner.model_fields)}"
    if err["type"] in ("model_type", "dict_type", "model_attributes_type"):
        return f"{full} = {_short(err['input'])} is invalid: expected a table"
    if err["type"] == "missing":
        return f"{full}: required key is missing"
    # A union reports one error per member: say what each member allows, in one sentence.
    same = [e for e in errors if _path(model, tuple(e["loc"]))[0] == path]
    msgs: list[str] = []
    for e in same:
        m = e["msg"][0].lower() + e["msg"][1:] if e["type"] != "config" else e["msg"]
        if m not in msgs:
            msgs.append(m)
    extra = field.json_schema_extra if field is not None and isinstance(field.json_schema_extra, dict) else {}
    allowed = extra.get("allowed")
    detail = f"allowed: {allowed}" if allowed else " or ".join(msgs)
    return f"{full} = {_short(err['input'])} is invalid: {detail}"


def _walk(model: type[BaseModel], dotted: str) -> type[BaseModel] | None:
    current: Any = model
    kind = "model"
    for part in dotted.replace("]", "").split("."):
        name = part.split("[")[0]
        if kind == "model" and isinstance(current, type) and name in current.model_fields:
            kind, current = _submodel(current.model_fields[name].annotation)
            if "[" in part:
                kind, current = _submodel(current) if current is not None else ("", None)
        elif kind == "dict":
            kind, current = _submodel(current) if current is not None else ("", None)
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _depth(obj: Any, limit: int) -> int:
    stack = [(obj, 1)]
    deepest = 0
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, d + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _file_kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def not_a_folder(path: str | Path) -> str | None:
    """Why ``path`` is not a folder (after symlinks), worded for an error line: ``"does not exist"``, ``"is a
    FIFO (named pipe), not a folder"``, ``"is a regular file, not a folder"``, ``"cannot be read (<reason>)"``;
    None when it is a folder."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({os_reason(exc)})"
    if stat.S_ISDIR(mode):
        return None
    return f"is {'a regular file' if stat.S_ISREG(mode) else _file_kind(mode)}, not a folder"


def open_regular(path: str | Path, label: str | None = None, error: type[Exception] = ConfigError) -> typing.BinaryIO:
    """``path`` opened for binary reading, refused in ONE ``error`` line starting with ``label`` (default: the
    quoted path) unless it is a regular file (after symlinks): a FIFO is opened non-blocking and refused, so a
    named pipe in a file's place never blocks the harness, and a device such as ``/dev/zero`` is never read.

    Raises ``error`` also for a file that does not exist or cannot be opened (with the system's reason)."""
    label = label or repr(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{label}: no such file") from None
    except OSError as exc:
        raise error(f"{label}: cannot read ({os_reason(exc)})") from None
    return _regular_file(fd, "rb", label, error)


def _regular_file(fd: int, mode_text: str, label: str, error: type[Exception], hint: str = "") -> typing.BinaryIO:
    """The file object of ``fd`` (opened non-blocking), made blocking; refused in one ``error`` line, with the
    descriptor closed, unless it is a regular file."""
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{label}: is {_file_kind(mode)}, not a regular file{hint}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, mode_text)
    except BaseException:
        os.close(fd)
        raise


def open_lock(path: str | Path, label: str | None = None, error: type[Exception] = ConfigError) -> typing.BinaryIO:
    """``path`` opened for reading and writing (created, mode 0666 less the umask, when missing) to hold an
    ``flock``: every lock and side file the harness opens goes through here.  Refused in ONE ``error`` line
    starting with ``label`` (default: the quoted path) unless it is a regular file after symlinks: a FIFO is
    opened non-blocking and refused (an ``open(..., "a")`` of a FIFO waits for a reader for ever), a device or
    a socket is refused, and so is a folder or a symlink to one."""
    label = label or repr(str(path))
    flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except IsADirectoryError:
        raise error(f"{label}: is a folder, not a regular file (a lock file goes there; remove or rename the "
                    "folder)") from None
    except OSError as exc:
        try:  # a FIFO without a reader, a socket: name what is there rather than the errno
            mode = os.stat(path).st_mode
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            raise error(f"{label}: is {_file_kind(mode)}, not a regular file (a lock file goes there)") from None
        raise error(f"{label}: cannot open the lock file ({exc.strerror or exc})") from None
    return _regular_file(fd, "r+b", label, error, " (a lock file goes there)")


def check_regular(path: str | Path, label: str | None = None, error: type[Exception] = ConfigError) -> None:
    """Refuse (as :func:`open_regular`) a path that exists but is not a regular file; a missing path passes (for
    files handed to a library that opens them itself: SQLite, Optuna's journal, ``torch.load``)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise error(f"{label or repr(str(path))}: cannot read ({os_reason(exc)})") from None
    if not stat.S_ISREG(mode):
        raise error(f"{label or repr(str(path))}: is {_file_kind(mode)}, not a regular file")


def read_file(path: str | Path, limit: int, label: str | None = None, error: type[Exception] = ConfigError,
              what: str = "such a file") -> bytes:
    """The bytes of the regular file ``path`` (:func:`open_regular`), at most ``limit`` of them: a larger file
    (also one that grows while it is read) is ONE ``error`` line naming it and the cap ("``what`` is at most")."""
    label = label or repr(str(path))
    with open_regular(path, label, error) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise error(f"{label}: {size:,} bytes; {what} is at most {limit:,}")
        try:
            raw = f.read(limit + 1)
        except OSError as exc:
            raise error(f"{label}: cannot read ({os_reason(exc)})") from None
    if len(raw) > limit:
        raise error(f"{label}: more than {limit:,} bytes; {what} is at most {limit:,}")
    return raw


def read_toml(path: str | Path, what: str = "file") -> dict[str, Any]:
    """Read a TOML file defensively; every failure is one ConfigError line naming ``what`` and the file."""
    p = Path(path)
    label = f"{what} {str(p)!r}"
    raw = read_file(p, MAX_FILE_BYTES, label, what="a study file")
    if b"\x00" in raw:
        raise ConfigError(f"{label}: binary data (a NUL byte); expected a TOML text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: not UTF-8 text (byte {exc.start}); expected a TOML text file") from None
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: invalid TOML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise ConfigError(f"{label}: nested too deeply (at most {MAX_DEPTH} levels)") from None
    if _depth(d, MAX_DEPTH) > MAX_DEPTH:
        raise ConfigError(f"{label}: nested too deeply (at most {MAX_DEPTH} levels)")
    return d


# ---------------------------------------------------------------------------------------------- paths

def _check_names(path: Path, what: str) -> None:
    text_path = os.fsencode(path)
    if len(text_path) >= 4096:
        raise ConfigError(f"{what}: path of {len(text_path):,} bytes is too long (at most 4,095)")
    for part in path.parts:
        if len(os.fsencode(part)) > 255:
            raise ConfigError(f"{what}: the name {part[:40]!r}... is {len(os.fsencode(part))} bytes long; a file "
                              "or folder name is at most 255")


def first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (what creating ``path`` would start from)."""
    existing = path
    while True:
        try:
            if existing.exists() or existing.is_symlink():
                return existing
        except OSError:
            pass
        if existing.parent == existing:
            return existing
        existing = existing.parent


def check_dir_writable(path: str | Path, what: str, target: str | Path | None = None) -> None:
    """Refuse, without creating anything, a folder that cannot be created or written (a name too long, a file
    in the way, a read-only file system, no permission); the ConfigError names ``what`` (a key or flag)."""
    p = Path(path)
    _check_names(Path(target) if target is not None else p, what)
    existing = first_existing(p)
    p = Path(target) if target is not None else p
    if not existing.is_dir():
        raise ConfigError(f"{what}: {str(existing)!r} is not a folder; cannot write {str(p)!r}")
    if not os.access(existing, os.W_OK | os.X_OK):
        why = "is on a read-only file system" if read_only_file_system(existing) else "is not writable"
        raise ConfigError(f"{what}: {str(existing)!r} {why}; cannot write {str(p)!r}")
    try:  # permission bits do not tell everything (root, /proc and /sys, some network file systems): try it
        probe = tempfile.mkdtemp(prefix=".nas-harness-probe-", dir=existing)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot create anything in {str(existing)!r} ({os_reason(exc)}); "
                          f"cannot write {str(p)!r}") from None
    with contextlib.suppress(OSError):
        os.rmdir(probe)


def json_schema(model: type[BaseModel], title: str) -> dict[str, Any]:
    """JSON Schema of a config model (for editors: taplo / Even Better TOML ``#:schema`` directives)."""
    schema = model.model_json_schema()
    schema["title"] = title
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _type_text(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _type_text(typing.get_args(annotation)[0])
    if origin is Literal:
        return ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        return " or ".join(_type_text(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return f"list of {_type_text(args[0])}" if args else "list"
    if origin is dict or annotation is dict:
        return "table"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(annotation, getattr(
        annotation, "__name__", str(annotation)))


def _range_text(field: Any) -> str:
    parts = []
    for m in _all_metadata(field.annotation) + list(field.metadata):
        for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("max_length", "length <=")):
            v = getattr(m, attr, None)
            if v is not None:
                parts.append(f"{sym} {v:g}" if isinstance(v, float) else f"{sym} {v}")
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    return extra.get("allowed") or ", ".join(dict.fromkeys(parts))


def _all_metadata(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is Annotated:
        args = typing.get_args(annotation)
        return list(args[1:]) + _all_metadata(args[0])
    return []


#: The columns of :func:`key_rows`; the key (0) and the default (2) are code.
KEY_COLUMNS = ["key", "type", "default", "allowed", "meaning"]


def key_rows(sections: Mapping[str, type[BaseModel]]) -> list[list[str]]:
    """One row per key of the given section models (:data:`KEY_COLUMNS`: key, type, default, allowed, meaning),
    for the key tables in docs/ (rendered by ``nas_harness.report.document``)."""
    rows = []
    for sec, model in sections.items():
        for name, field in model.model_fields.items():
            kind, _ = _submodel(field.annotation)
            if kind == "model":
                continue  # a section of its own
            value = None if field.is_required() else field.get_default(call_default_factory=True)
            default = "(required)" if field.is_required() else repr(list(value) if isinstance(value, tuple) else value)
            rows.append([_join(sec, name), _type_text(field.annotation), default, _range_text(field),
                         field.description or ""])
    return rows


@contextlib.contextmanager
def write_output(path: str | Path, mode: str = "w", label: str | None = None,
                 error: type[Exception] = ConfigError) -> typing.Iterator[typing.IO[Any]]:
    """A file object to write the output file ``path`` through: every file the harness writes goes here.

    A path that exists but is not a regular file after symlinks (a FIFO, a device, a socket, a folder) is refused
    in ONE ``error`` line starting with ``label`` (default: the quoted path), before anything is written.  The
    content goes into a new temp file in the same folder (mode 0666 less the umask) that replaces the file with
    ``os.replace`` once the body finished: a write never opens what is at ``path``, so it can neither block on a
    FIFO created there meanwhile nor leave a half-written file; a symlink at ``path`` is kept and its target is
    replaced.  ``mode`` is ``"w"`` (text, UTF-8, newline as written) or ``"wb"``.  If the body or the write
    fails, the temp file is removed and the exception propagates (an ``OSError`` with its errno)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"write_output: mode {mode!r}; allowed: 'w', 'wb'")
    p = Path(path)
    check_regular(p, label, error)
    target = Path(os.path.realpath(p)) if p.is_symlink() else p
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise FileExistsError(f"cannot create a temp file next to {str(target)!r}")
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8", "newline": ""} if mode == "w" else {})) as f:
            yield f
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str, label: str | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`write_output`; returns ``Path(path)``."""
    with write_output(path, "w", label) as f:
        f.write(text)
    return Path(path)


#: Output files :func:`refuse_special_outputs` checks: reports, tables, figures, checkpoints and caches.
OUTPUT_SUFFIXES = (".png", ".svg", ".pdf", ".md", ".html", ".csv", ".parquet", ".json", ".arch", ".py", ".tmp",
                   ".pt", ".pth", ".ckpt", ".npz", ".gz")


def check_outputs(paths: typing.Iterable[str | Path], what: str) -> None:
    """Refuse in ONE ``ConfigError`` line (``what: 'PATH': is a FIFO (named pipe), not a regular file``), before
    anything is written, an output file that exists but is not a regular file after symlinks (a FIFO, a device,
    a socket, a folder).  :func:`write_output` refuses it again at the write, which never blocks."""
    for p in paths:
        check_regular(p, f"{what}: {str(p)!r}")


def refuse_special_outputs(folder: str | Path, what: str) -> None:
    """:func:`check_outputs` for every file under ``folder`` whose suffix is an output's
    (:data:`OUTPUT_SUFFIXES`): what a command that writes into the folder may write (a folder is left alone)."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        found += [Path(root) / f for f in files + dirs]
    for q in sorted(found):
        if q.suffix.lower() in OUTPUT_SUFFIXES:
            with contextlib.suppress(OSError):
                if not os.path.isdir(q):
                    check_regular(q, f"{what}: {str(q)!r}")
