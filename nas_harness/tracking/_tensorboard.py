"""TensorBoard tracker: event files in a log folder, one sub-folder per study and one per trial.

Layout (``tensorboard --logdir DIR`` shows it): ``DIR/<study>/`` holds the study's text (its settings, the
report) and figures plus one point per trial (``trial/<metric>`` at step = trial number, so the search's
progress is a curve); ``DIR/<study>/trial-<key>/`` holds that trial's params (text), its metrics (step 0)
and its per-epoch curves (step = epoch).  A trial folder is claimed with an atomic ``mkdir``, so a trial is
written once by whichever worker gets there first.  Writer: ``torch.utils.tensorboard`` (needs the
``tensorboard`` package), else ``tensorboardX``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nas_harness.tracking._base import Tracker
from nas_harness.tracking._entry import TrialEntry


def _writer_class() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package
        from tensorboardX import SummaryWriter
    return SummaryWriter


def _table(params: Mapping[str, str]) -> str:
    """A key/value Markdown table (TensorBoard's text plugin renders Markdown tables; '|' in a value is escaped)."""
    from nas_harness.report.document import Table, to_markdown

    return to_markdown([Table(["key", "value"], [[str(k), str(v)] for k, v in params.items()])])


class TensorBoardTracker(Tracker):
    """Writes under ``root`` (created when missing)."""

    kind = "tensorboard"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.writer_class = _writer_class()
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise PermissionError(f"{self.root} is not writable")
        self.dir: Path | None = None
        self.writer: Any = None

    def describe(self) -> str:
        return f"tensorboard {self.root}"

    def start(self, study: str, params: Mapping[str, str], tags: Mapping[str, str]) -> None:
        self.dir = self.root / study
        self.writer = self.writer_class(log_dir=str(self.dir))
        if params or tags:
            self.writer.add_text("study/settings", _table({**tags, **params}), 0)
        self.writer.flush()

    def logged(self) -> set[str]:
        if self.dir is None or not self.dir.is_dir():
            return set()
        return {p.name.removeprefix("trial-") for p in self.dir.iterdir() if p.is_dir() and p.name.startswith("trial-")}

    def log_trial(self, entry: TrialEntry) -> bool:
        if self.dir is None:
            raise RuntimeError("start() was not called")
        folder = self.dir / f"trial-{entry.key.replace('/', '_')}"
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            return False
        w = self.writer_class(log_dir=str(folder))
        try:
            w.add_text("params", _table({"name": entry.name, **entry.params}), 0)
            for k, v in entry.metrics.items():
                w.add_scalar(k, v, 0)
            for name, curve in entry.curves.items():
                for step, v in curve:
                    w.add_scalar(name, v, step)
        finally:
            w.close()
        if entry.key.isdigit():
            for k, v in entry.metrics.items():
                self.writer.add_scalar(f"trial/{k}", v, int(entry.key))
            self.writer.flush()
        return True

    def log_artifacts(self, paths: Sequence[Path], folder: str) -> None:
        if self.writer is None:
            raise RuntimeError("start() was not called")
        for p in paths:
            tag = f"{folder}/{p.name}" if folder else p.name
            if p.suffix.lower() == ".png":
                import numpy as np
                from PIL import Image

                with Image.open(p) as im:
                    self.writer.add_image(tag, np.asarray(im.convert("RGB")), 0, dataformats="HWC")
            elif p.suffix.lower() in (".md", ".txt"):
                self.writer.add_text(tag, p.read_text(errors="replace")[:100_000], 0)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
