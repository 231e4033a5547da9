"""``confirm`` and ``fidelity`` on a read-only copy of someone's results folder: with ``--out`` every write goes
there (the runs into ``--out``/runs.db) and the copy is left as it was; without it, one line names the file
and why it would be written."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from helpers.mounts import read_only_copy
from helpers.real_study import needs_fmnist

from nas_harness.cli import main

pytestmark = needs_fmnist

CONFIRM = ["--top", "1", "--seeds", "1", "--no-references", "--no-figure", "--no-progress", "--workers", "1"]
FIDELITY = ["--top", "1", "--random", "1", "--epochs", "2", "--no-zero-cost", "--no-figure", "--no-progress",
            "--workers", "1"]


def test_confirm_and_fidelity_of_a_read_only_copy_write_only_into_out(real_study: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with read_only_copy(real_study, tmp_path / "ro") as ro:
        before = {p.name: p.read_bytes() for p in ro.iterdir()}
        assert main(["confirm", str(ro), *CONFIRM]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"cannot write '{ro / 'study.db'}'" in err
        assert "confirm stores its runs in the study's own storage" in err and "--out FOLDER" in err

        out = tmp_path / "mine"
        assert main(["confirm", str(ro), *CONFIRM, "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert f"note: {ro / 'study.db'} cannot be written; the confirm runs are stored in {out / 'runs.db'}" in err
        runs = optuna.load_study(study_name="tiny-confirm", storage=f"sqlite:///{out / 'runs.db'}").trials
        assert len(runs) == 1 and runs[0].state.name == "COMPLETE"
        assert main(["confirm", str(ro), *CONFIRM, "--out", str(out)]) == 0  # resumes from --out's runs
        assert "1 stored, 0 to run" in capsys.readouterr().err
        assert main(["fidelity", str(ro), *FIDELITY, "--out", str(out)]) == 0
        assert "the fidelity runs are stored in" in capsys.readouterr().err
        assert {"confirm.csv", "confirm.md", "fidelity.json", "runs.db"} <= {p.name for p in out.iterdir()}
        assert {p.name: p.read_bytes() for p in ro.iterdir()} == before
