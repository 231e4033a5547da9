"""Every file a command writes goes through one helper (``_config.write_output``: a temp file in the same folder,
then ``os.replace``), so a FIFO, a device or a socket where an output goes can never block or receive the write;
and where the command knows its output names it refuses such a file in one line (exit 2) before anything is
written.  A write that still fails after the trials finished is one warning naming the file; the trials are kept.

Real FIFOs (``os.mkfifo``); every test has a timeout, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers.cli import run_cli
from helpers.planted import plant
from helpers.studies import tiny_dict, to_toml

from nas_harness._config import check_outputs, not_a_folder, refuse_special_outputs, write_output, write_text
from nas_harness.errors import ConfigError

pytestmark = pytest.mark.timeout(120)

KINDS = ["fifo", "device", "socket", "folder", "symlink-to-fifo"]


# ---------------------------------------------------------------------------------------------- the helper

@pytest.mark.parametrize("kind", KINDS)
def test_write_output_refuses_what_is_not_a_regular_file_in_one_line(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out" / "trials.csv"
    plant(target, kind)
    before = sorted(p.name for p in target.parent.iterdir())
    with pytest.raises(ConfigError) as info:
        write_text(target, "x\n")
    line = str(info.value)
    assert "\n" not in line and "trials.csv" in line and "not a regular file" in line, line
    assert sorted(p.name for p in target.parent.iterdir()) == before  # no temp file left behind
    with pytest.raises(ConfigError, match=r"--out: .*trials\.csv"):
        check_outputs([target], "--out")
    if kind != "folder":  # a folder in an output's place is left to the write, which refuses it in one line
        with pytest.raises(ConfigError, match=r"trials\.csv"):
            refuse_special_outputs(tmp_path, "run.results_dir")


def test_write_output_never_opens_the_path_a_fifo_made_meanwhile_is_replaced(tmp_path: Path) -> None:
    """The check and the write are apart; a FIFO made between them is not opened (the write would block for
    ever), it is replaced by the finished file."""
    target = tmp_path / "report.md"
    with write_output(target) as f:
        os.mkfifo(target)
        f.write("# done\n")
    assert stat.S_ISREG(os.lstat(target).st_mode) and target.read_text() == "# done\n"


def test_write_output_keeps_a_symlink_the_umask_mode_and_the_old_file_on_failure(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere.csv"
    real.write_text("old\n")
    link = tmp_path / "trials.csv"
    link.symlink_to(real)
    with write_output(link, "wb") as f:
        f.write(b"new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(real.stat().st_mode) == 0o666 & ~umask
    with pytest.raises(RuntimeError), write_output(real) as f:
        f.write("half")
        raise RuntimeError("the writer failed")
    assert real.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.csv",
                                                                                          "trials.csv"]


def test_not_a_folder_names_what_is_there(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.db")
    (tmp_path / "file").write_text("")
    assert not_a_folder(tmp_path) is None
    assert not_a_folder(tmp_path / "missing") == "does not exist"
    assert not_a_folder(tmp_path / "fifo.db") == "is a FIFO (named pipe), not a folder"
    assert not_a_folder(tmp_path / "file") == "is a regular file, not a folder"


# ---------------------------------------------------------------------------------------------- search

def test_search_end_of_run_outputs_that_became_fifos_are_one_warning_each_naming_the_file(tmp_path: Path) -> None:
    """The race the up-front check cannot see: trials.csv and a figure turn into FIFOs while the search runs.
    Writing them never blocks; each is one warning line naming the file; the trials stay in the storage."""
    from helpers.fakes import study_folder

    from nas_harness.study.search import write_outputs

    folder = study_folder(tmp_path / "results", "fake")
    os.mkfifo(folder / "trials.csv")
    cfg = SimpleNamespace(storage_url=f"sqlite:///{folder / 'study.db'}", name="fake", study_dir=folder,
                          run=SimpleNamespace(plots=False))
    lines: list[str] = []
    assert write_outputs(None, cfg, lines.append) == []
    assert len(lines) == 1 and "trials.csv" in lines[0] and "FIFO" in lines[0] and "safe in" in lines[0], lines
    (folder / "trials.csv").unlink()
    plant(folder / "figures" / "pareto.png", "fifo")
    plant(folder / "figures" / "accuracy_vs_macs.png", "fifo")
    cfg.run.plots = True
    lines.clear()
    out = write_outputs(None, cfg, lines.append)
    assert out and out[0] == folder / "trials.csv" and (folder / "trials.csv").is_file()
    assert len(lines) == 1 and "figures not written" in lines[0] and "accuracy_vs_macs.png" in lines[0], lines


def _study(tmp_path: Path, **run: object) -> Path:
    d = tiny_dict(tmp_path)
    d["run"].update(run)
    (tmp_path / "s.toml").write_text(to_toml(d))
    return tmp_path / "results" / "tiny"


def _one_error(res, *needles: str) -> None:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert len(lines) == 1 and all(n in lines[0] for n in needles), lines
    assert lines[0].startswith("nas-harness search: error: run.results_dir:"), lines


def test_search_again_with_trials_csv_a_fifo_is_refused_up_front_instead_of_hanging(tmp_path: Path) -> None:
    """The user's report: a finished study whose trials.csv was replaced by a FIFO; the same search again blocked
    for ever opening it.  Now: one line, exit 2, before any trial runs (the stored trials are unchanged)."""
    import optuna

    folder = _study(tmp_path, n_trials=1)
    assert run_cli("search", "s.toml", cwd=tmp_path, timeout=300).returncode == 0
    (folder / "trials.csv").unlink()
    os.mkfifo(folder / "trials.csv")
    res = run_cli("search", "s.toml", "--n-trials", "2", cwd=tmp_path, timeout=120)
    _one_error(res, "trials.csv", "FIFO (named pipe)")
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder / 'study.db'}")
    assert len(study.trials) == 1
    os.unlink(folder / "trials.csv")
    plant(folder / "figures" / "pareto.svg", "fifo")  # a figure: the same line, naming it
    _one_error(run_cli("search", "s.toml", "--n-trials", "2", cwd=tmp_path, timeout=120), "pareto.svg", "FIFO")
    assert len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder / 'study.db'}").trials) == 1


def test_data_root_that_is_a_fifo_is_named_as_a_fifo_not_as_missing(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.db")
    d = tiny_dict(tmp_path, data={"dataset": "fashion_mnist", "root": str(tmp_path / "fifo.db")})
    (tmp_path / "s.toml").write_text(to_toml(d))
    res = run_cli("search", "s.toml", cwd=tmp_path, timeout=120)
    assert res.returncode == 2 and "fifo.db is a FIFO (named pipe), not a folder" in res.stderr, res.stderr
    assert "does not exist" not in res.stderr


# ---------------------------------------------------------------------------------------------- confirm, fidelity

@pytest.mark.parametrize(("argv", "planted", "label"), [
    (["confirm", "results/fake"], "results/fake/confirm.md", "output"),
    (["confirm", "results/fake", "--out", "o"], "o/confirm_pairs.csv", "--out"),
    (["fidelity", "results/fake", "--out", "o"], "o/fidelity.md", "--out"),
    (["fidelity", "results/fake"], "results/fake/fidelity.png", "output"),
])
def test_confirm_and_fidelity_refuse_an_output_fifo_before_any_run(tmp_path: Path, monkeypatch, capsys,
                                                                   argv: list[str], planted: str, label: str) -> None:
    from helpers.fakes import study_folder

    from nas_harness.cli import main

    monkeypatch.chdir(tmp_path)
    folder = study_folder(tmp_path / "results", "fake")
    plant(tmp_path / planted, "fifo")
    def names() -> list[str]:  # SQLite's WAL side files come and go with reading
        return sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm")))

    before = names()
    capsys.readouterr()
    assert main(argv) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("nas-harness")]
    assert len(err) == 1 and f"error: {label}: '{planted}': is a FIFO" in err[0], err
    assert names() == before  # no runs.db, no checkpoints, no report


@pytest.mark.parametrize("argv", [["bench", "--quick", "--out", "b.json"], ["doctor", "--gpu", "--device", "cpu",
                                                                          "--out", "b.json"]])
def test_bench_and_doctor_refuse_a_fifo_as_out_before_running(tmp_path: Path, monkeypatch, capsys,
                                                              argv: list[str]) -> None:
    from nas_harness.cli import main

    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "b.json")
    capsys.readouterr()
    assert main(argv) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "--out: 'b.json': is a FIFO (named pipe)" in err[0], err


@pytest.mark.parametrize("planted", ["benchmark.md", "runs/random-0.json"])
def test_benchmark_refuses_a_fifo_among_its_outputs_and_stored_runs(tmp_path: Path, monkeypatch, capsys,
                                                                    planted: str) -> None:
    from nas_harness.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.toml").write_text('name = "b"\nresults_dir = "results"\n')
    plant(tmp_path / "results" / "b" / planted, "fifo")
    capsys.readouterr()
    assert main(["benchmark", "b.toml"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and f"results_dir: 'results/b/{planted}': is a FIFO" in err[0], err
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "results").rglob("*")) == sorted(
        ["results/b", f"results/b/{planted}", *(["results/b/runs"] if "/" in planted else [])])
