"""Small text-table and number formatting shared by the CLI commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def human(n: float, unit: str = "") -> str:
    """``401659392`` → ``401.66M``: readable counts for tables (exact numbers are printed alongside)."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned text table (numbers right-aligned) — no extra dependency for a terminal print."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_num(r[i]) for r in cells[1:]) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)


def _is_num(s: str) -> bool:
    try:
        float(s.replace(",", "").rstrip("KMG"))
        return True
    except ValueError:
        return False


def add_study_source(p: argparse.ArgumentParser) -> None:
    """The STUDY positional and ``--study NAME`` shared by the commands that read one stored study."""
    from nas_harness.cli._checks import text

    p.add_argument("study", metavar="STUDY", type=text(),
                   help="results/<study> folder, SQLite/journal file or storage URL")
    p.add_argument("--study", dest="study_name", metavar="NAME", type=text(1024),
                   help="Optuna study name (when the storage holds several)")


def finish_evaluation(text: str, outputs: Sequence[Path], failed: Sequence[object], doc: str) -> int:
    """End of ``confirm``/``fidelity``: print the Markdown summary and the files written; exit status 1 when
    runs failed (they are named in ``doc``)."""
    print(text)
    print("wrote " + ", ".join(str(p) for p in outputs))
    if failed:
        print(f"{len(failed)} run(s) failed (see {doc}); --retry-failed runs them again", file=sys.stderr)
        return 1
    return 0
