"""Issue #12: a full disk or a read-only folder while writing results is ONE line (exit 2) saying what
happened, which file, and what is kept; finished trials survive and the same command continues once there
is space again.  Each case runs the real command in a subprocess on a small tmpfs (skipped, for one reason,
where mounting is not permitted)."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from helpers.cli import cli_env, run_cli
from helpers.fakes import study_folder
from helpers.mounts import fill, full_disk, read_only_copy, read_only_dir
from helpers.studies import tiny_ablation, tiny_dict, to_toml, with_run

from nas_harness.cli import main

ABLATION = tiny_ablation(seeds=3)


def cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = cli_env()
    env.pop("NAS_HARNESS_DATA", None)
    return run_cli(*argv, cwd=cwd, env=env)


def error_line(res: subprocess.CompletedProcess[str], command: str) -> str:
    """The one error line: exit 2, no traceback, exactly one 'error:' line and it is the last line."""
    lines = res.stderr.splitlines()
    errors = [ln for ln in lines if ln.startswith(f"nas-harness {command}: error: ")]
    assert res.returncode == 2, f"exit {res.returncode}\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert len(errors) == 1 and lines[-1] == errors[0], res.stderr[-3000:]
    return errors[0]


def finished(db: Path, study: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        (n,), = con.execute("SELECT count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
                            "WHERE s.study_name = ? AND t.state = 'COMPLETE'", (study,)).fetchall()
    return n


def test_search_on_a_full_disk_keeps_finished_trials_and_continues(tmp_path: Path) -> None:
    d = tiny_dict(tmp_path)
    with full_disk(tmp_path / "disk", size="3m", leave=3 << 20) as disk:
        d["run"]["results_dir"] = str(disk)
        (tmp_path / "s.toml").write_text(to_toml(d))
        assert cli("search", "s.toml", "--n-trials", "1", cwd=tmp_path).returncode == 0
        db = disk / "tiny" / "study.db"
        fill(disk, 0)
        line = error_line(cli("search", "s.toml", "--n-trials", "3", cwd=tmp_path), "search")
        assert "the disk is full" in line and str(db) in line, line
        assert "1 finished trial" in line and "safe in sqlite:///" in line and "run the same command again" in line
        (disk / ".filler").unlink()  # space again: the same command continues where it stopped
        res = cli("search", "s.toml", "--n-trials", "3", cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
        assert finished(db, "tiny") == 3


def test_ablation_on_a_full_disk_is_one_line_naming_the_store(tmp_path: Path) -> None:
    with full_disk(tmp_path / "disk", size="3m", leave=150 << 10) as disk:
        (tmp_path / "a.toml").write_text(with_run(ABLATION, f'results_dir = "{disk}"'))
        line = error_line(cli("ablate", "a.toml", "--no-progress", "--no-figure", cwd=tmp_path), "ablate")
        assert "the disk is full" in line and "ablation.db" in line and "finished run" in line, line


def test_checkpoints_on_a_full_disk_warn_and_runs_are_stored_elsewhere(tmp_path: Path) -> None:
    """Storage on a good disk, results folder (checkpoints, report) on a full one: every run is trained
    and stored; the report is what cannot be written, and the line says the runs are safe."""
    with full_disk(tmp_path / "disk") as disk:
        (tmp_path / "a.toml").write_text(with_run(ABLATION.replace("steps = 3", "epochs = 2").replace(
            "seeds = 3", "seeds = 1"), f'results_dir = "{disk}"\nstorage = "sqlite:///{tmp_path}/s.db"'))
        res = cli("ablate", "a.toml", "--no-progress", "--no-figure", cwd=tmp_path)
        line = error_line(res, "ablate")
        assert "the disk is full" in line and str(disk) in line and "the 2 finished runs are safe" in line, line
        warnings = [ln for ln in res.stderr.splitlines() if ": warning: checkpoint" in ln]
        assert warnings and all("checkpoint not written: the disk is full" in w for w in warnings)
        assert finished(tmp_path / "s.db", "tiny") == 2


@pytest.mark.parametrize("command", [["plot"], ["report"], ["export", "--family", "1", "2"]])
def test_outputs_on_a_full_disk_leave_nothing_behind(command: list[str], tmp_path: Path) -> None:
    study_folder(tmp_path / "results", "fake")
    with full_disk(tmp_path / "disk", leave=2048) as disk:
        out = disk / "out"
        line = error_line(cli(command[0], "results/fake", *command[1:], "--out", str(out), cwd=tmp_path),
                          command[0])
        assert "the disk is full" in line and str(out) in line and "unchanged" in line, line
        assert sorted(p.name for p in disk.iterdir()) == [".filler"]  # partial outputs removed


def test_bench_on_a_full_disk_prints_its_figures_and_leaves_no_partial_file(tmp_path: Path) -> None:
    with full_disk(tmp_path / "disk", leave=0) as disk:
        res = cli("bench", "--suite", "flops", "--quick", "--out", str(disk / "b" / "bench.json"), cwd=tmp_path)
        line = error_line(res, "bench")
        assert "the disk is full" in line and "bench.json" in line and "printed above" in line, line
        assert "flops:" in res.stdout
        assert sorted(p.name for p in disk.iterdir()) == [".filler"]


def test_kernels_built_on_a_full_disk_are_one_warning_in_the_common_words(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiler runs out of space writing into the kernel cache: one warning with the words every other
    full-disk message uses, and training falls back to stock PyTorch ops."""
    import shutil
    import warnings

    from nas_harness.kernels import _native

    cc = _native._compiler()
    if cc is None or shutil.which(cc) is None:
        pytest.skip("no C compiler")
    with full_disk(tmp_path / "disk", leave=0) as disk:
        monkeypatch.setenv("XDG_CACHE_HOME", str(disk))
        monkeypatch.setenv(_native.ENV_VAR, "1")
        monkeypatch.setattr(_native, "_state", {})
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            assert _native.library() is None
        msgs = [str(w.message) for w in seen]
        assert len(msgs) == 1 and msgs[0].startswith(
            "nas_harness.kernels: CPU kernels unavailable, using stock PyTorch ops: the disk is full (no space left "
            f"on the device) writing '{disk}/nas-harness/native/kernels-"), msgs


@pytest.mark.parametrize("command", [["plot"], ["report"], ["export"]])
def test_outputs_into_a_read_only_folder_are_refused_before_anything_runs(command: list[str],
                                                                         tmp_path: Path) -> None:
    study_folder(tmp_path / "results", "fake")
    with read_only_dir(tmp_path / "ro") as ro:
        line = error_line(cli(command[0], "results/fake", "--out", str(ro / "out"), cwd=tmp_path), command[0])
        assert "--out" in line and "read-only" in line and str(ro) in line, line


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("command", ["plot", "report", "export"])
def test_outputs_where_nothing_can_be_created_are_refused(command: str, tmp_path: Path) -> None:
    """Permission bits say root may write under /proc; creating anything there fails all the same."""
    study_folder(tmp_path / "results", "fake")
    line = error_line(cli(command, "results/fake", "--out", "/proc/nas-harness-out", cwd=tmp_path), command)
    assert "--out" in line and "/proc" in line, line


def test_a_read_only_results_folder_can_be_read(tmp_path: Path) -> None:
    """An archived or shared results folder on a read-only file system: report, plot and export read it and
    write their outputs elsewhere; the study file is not touched."""
    src = study_folder(tmp_path / "results", "fake")
    with read_only_copy(src, tmp_path / "ro") as ro:
        before = (ro / "study.db").read_bytes()
        for command in (["report", str(ro), "--out", str(tmp_path / "rep")],
                        ["plot", str(ro), "--out", str(tmp_path / "fig")],
                        ["export", str(ro), "--rank", "1", "--out", str(tmp_path / "exp")]):
            assert main(command) == 0, command  # in this process: the mount is detached lazily if still open
        assert (tmp_path / "rep" / "report.md").is_file() and any((tmp_path / "fig").iterdir())
        assert any((tmp_path / "exp").iterdir())
        assert (ro / "study.db").read_bytes() == before


@pytest.mark.parametrize("command", ["report", "plot", "export"])
def test_reading_a_file_that_holds_no_study_leaves_it_alone(command: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    line = error_line(cli(command, str(empty), cwd=tmp_path), command)
    assert "holds no study" in line and str(empty) in line, line
    assert empty.stat().st_size == 0 and not (tmp_path / "results").exists()
