"""``nas-harness`` command line: one module per sub-command, each exposing ``add_parser`` and ``run``.

Bad input anywhere (a ``ValueError`` from parsing an arch, a study file, a data path, ...) is reported as
one line on stderr with exit code 2; nothing that was already computed is touched.  So is a full disk or a
read-only/forbidden path met while writing (the line names the file and says what is kept; see
:mod:`nas_harness.cli._checks`).  Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import os
import sys
from collections.abc import Sequence
from typing import Any

# Sub-command name -> module in this package.  Modules are imported lazily so `nas-harness info` does not
# pay for importing Ray or seaborn.
_COMMANDS: dict[str, str] = {
    "info": "_info",
    "scale": "_scale",
    "search": "_search",
    "plot": "_plot",
    "report": "_report",
    "export": "_export",
    "ablate": "_ablate",
    "scaling-curves": "_scaling_curves",
    "confirm": "_confirm",
    "fidelity": "_fidelity",
    "bench": "_bench",
    "benchmark": "_benchmark",
    "doctor": "_doctor",
    "schema": "_schema",
    "latency": "_latency",
}


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad arguments already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas-harness", description="EfficientNet-style NAS and ablation harness")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, module in _COMMANDS.items():
        mod = importlib.import_module(f"{__name__}.{module}")
        mod.add_parser(sub, name)
    return parser


def _catch_interrupts() -> None:
    """Ctrl-C raises KeyboardInterrupt as usual and is also noted (``errors.note_interrupt``): one that lands in
    a callback Python cannot raise from is not lost (the run stops at its next safe point) and is not printed
    as an "Exception ignored" traceback, nor is SQLAlchemy's clean-up of a query it interrupted.

    SIGTERM (SLURM, systemd, ``docker stop``, ``kill``) is handled the same way, noted with its signal: the
    command stops as gracefully as on Ctrl-C (trials in flight failed as interrupted and queued again, worker
    processes stopped, finished work kept), says it was stopped by SIGTERM, and exits 143.  A SIGTERM that this
    process was started ignoring (``nohup``-like set-ups) stays ignored."""
    import signal
    import threading

    from nas_harness.errors import note_interrupt, quiet_cleanup_after_interrupt

    if threading.current_thread() is not threading.main_thread():
        return
    quiet_cleanup_after_interrupt()

    def on_signal(signum: int, frame: Any) -> None:
        note_interrupt(signum)
        raise KeyboardInterrupt

    def unraisable(info: Any) -> None:
        if isinstance(info.exc_value, KeyboardInterrupt):
            return  # noted: raised again at the next safe point
        sys.__unraisablehook__(info)

    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_signal)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, on_signal)
    sys.unraisablehook = unraisable


def _stopped_line(command: str) -> str:
    """The one line of a command stopped by Ctrl-C or SIGTERM outside a runner's own stop report."""
    from nas_harness.errors import interrupt_name

    name = interrupt_name()
    return f"{command}: interrupted" if name == "Ctrl-C" else f"{command}: stopped by {name}"


class _ImportsWithoutInterrupt(importlib.abc.MetaPathFinder):
    """Ctrl-C while torch is being imported would land inside one of its C++ callbacks and abort the process
    (``terminate called after throwing ... KeyboardInterrupt``, exit -6).  This finder wraps the import of the
    listed top-level packages: a SIGINT during it is held back and raised as KeyboardInterrupt right after."""

    PACKAGES = frozenset({"torch", "torchvision"})

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in self.PACKAGES:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _DeferInterrupt(spec.loader)
        return spec


class _DeferInterrupt:
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            self.loader.exec_module(module)
            return
        held: list[int] = []
        watched = [s for s in (signal.SIGINT, signal.SIGTERM) if callable(signal.getsignal(s))]
        previous = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in watched}
        try:
            self.loader.exec_module(module)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        if held:
            from nas_harness.errors import note_interrupt

            note_interrupt(held[0])
            raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    if not any(isinstance(f, _ImportsWithoutInterrupt) for f in sys.meta_path):
        sys.meta_path.insert(0, _ImportsWithoutInterrupt())
    _catch_interrupts()
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C/SIGTERM while starting up (imports, argument checks): one line, no traceback
        from nas_harness.errors import interrupt_exit_code

        name = next((a for a in (sys.argv[1:] if argv is None else argv) if a in _COMMANDS), "")
        print(_stopped_line(f"nas-harness{' ' + name if name else ''}"), file=sys.stderr)
        return interrupt_exit_code()


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one line (or the help): return its exit code
        return exc.code if isinstance(exc.code, int) else 2 if exc.code else 0
    from nas_harness.cli._checks import environment_error, one_line_warnings

    try:
        from nas_harness.backends.settings import passive_wait_env

        # idle OpenMP threads sleep instead of spinning (a shared machine stays fair); before torch is imported
        os.environ.update(passive_wait_env())
        with one_line_warnings(args.command):
            if "NAS_HARNESS_NATIVE" in os.environ:  # a value that is neither on nor off: one line, before anything
                from nas_harness.kernels._native import check_setting

                check_setting()
            return int(args.func(args) or 0)
    except ValueError as exc:  # ConfigError, DataError and plain ValueErrors from input parsing
        msg = " ".join(str(exc).split())
        print(f"nas-harness {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # what finished is stored already (every runner stores as it goes)
        from nas_harness.errors import interrupt_exit_code

        print(_stopped_line(f"nas-harness {args.command}"), file=sys.stderr)
        return interrupt_exit_code()
    except BrokenPipeError:  # `nas-harness schema study | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a full disk, a read-only folder: one line; anything else is a bug (traceback)
        line = environment_error(exc, args)
        if line is None:
            raise
        print(f"nas-harness {args.command}: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
