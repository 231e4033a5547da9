"""Issue #12, table-driven: every hostile or broken input to every command ends in exit code 2, ONE line on
stderr naming the field, flag or file (no traceback), and leaves the working directory untouched (nothing
created under results/, nothing changed in an existing study folder).

Each case runs in a fresh directory holding the files it needs; the directory is snapshotted (every path with
its size and content hash) before and after.  SQLite's sidecar files (``-wal``, ``-shm``) and the storage lock
are not results and are left out of the comparison; the database file itself is compared.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers.fakes import study_folder
from helpers.mounts import read_only_dir
from helpers.studies import TINY_ARCH, tiny_ablation, tiny_dict, to_toml

from nas_harness.cli import main

ABLATION = tiny_ablation()


def study_toml(**sections: Any) -> Callable[[Path], str]:
    """A tiny study file (synthetic data, results under ./results) with sections merged in."""

    def make(root: Path) -> str:
        d = tiny_dict(root, **sections)
        d["run"]["results_dir"] = "results"
        return to_toml(d)

    return make


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (the pixels are not there: a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def small_png(shade: int) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def image_folder(classes: list[str], extra: dict[str, bytes] | None = None) -> dict[str, bytes]:
    files = {f"imgs/{c}/{i}.png": small_png(40 * i) for c in classes for i in range(5)}
    return {**files, **(extra or {})}


FAKE = "fake-study"  # a real study built by tests/helpers/fakes.py, copied into results/fake/


@dataclass
class Case:
    id: str
    argv: list[str]
    expect: str  # a substring of the one error line: the field, flag or file it names
    files: dict[str, Any] = field(default_factory=dict)  # path -> str | bytes | callable(root) | FAKE
    read_only: str | None = None  # a folder mounted read-only (the case is skipped where mount is not permitted)


def _study_db(root: Path) -> Path:
    return study_folder(root / "results", "fake") / "study.db"


CASES = [
    # ---------------------------------------------------------------- the inputs quoted in issue #12
    Case("info-400-char-name", ["info", "x" * 400], "expected b0..b7, an arch string, or an existing file"),
    Case("scale-phi-1e9", ["scale", "b0", "--phi", "1e9"], "argument --phi"),
    Case("scale-phi-nan", ["scale", "b0", "--phi", "nan"], "argument --phi"),
    Case("scale-named-with-phi", ["scale", "b0", "--named", "--phi", "1"], "--phi: has no effect with --named"),
    Case("study-target-macs-nan", ["search", "s.toml"], "objective.target_macs",
         {"s.toml": lambda r: study_toml()(r).replace("target_macs = 10000000.0", "target_macs = nan")}),
    Case("study-target-macs-inf", ["search", "s.toml"], "objective.target_macs",
         {"s.toml": lambda r: study_toml()(r).replace("target_macs = 10000000.0", "target_macs = inf")}),
    Case("study-max-macs-nan", ["search", "s.toml"], "objective.max_macs",
         {"s.toml": lambda r: study_toml(objective={"kind": "budget"})(r).replace(
             '[objective]\nkind = "budget"', '[objective]\nkind = "budget"\nmax_macs = nan')}),
    Case("study-timeout-nan", ["search", "s.toml"], "run.timeout_s",
         {"s.toml": lambda r: study_toml()(r).replace("[run]\n", "[run]\ntimeout_s = nan\n")}),
    Case("study-inert-alpha", ["search", "s.toml"], "objective.alpha",
         {"s.toml": study_toml(objective={"alpha": -0.5})}),
    Case("study-inert-se-ratio", ["search", "s.toml"], "space.se_ratio",
         {"s.toml": study_toml(space={"se": [False], "se_ratio": 0.5})}),
    Case("study-subset-fewer-than-classes", ["search", "s.toml"], "data.train_subset",
         {"s.toml": study_toml(data={"train_subset": 5})}),
    Case("check-subset-fewer-than-classes", ["search", "s.toml", "--check"], "data.train_subset",
         {"s.toml": study_toml(data={"train_subset": 5})}),
    Case("data-root-without-fashion-mnist", ["search", "s.toml"], "data.root",
         {"s.toml": study_toml(data={"dataset": "fashion_mnist", "root": "empty"}), "empty/.keep": ""}),
    Case("folder-one-class", ["search", "s.toml"], "at least 2 class",
         {"s.toml": study_toml(data={"dataset": "folder", "root": "imgs", "val_size": 1, "train_subset": 2}),
          **image_folder(["only"])}),
    Case("folder-decompression-bomb", ["search", "s.toml"], "big.png",
         {"s.toml": study_toml(data={"dataset": "folder", "root": "imgs", "val_size": 2, "train_subset": 4}),
          **image_folder(["a", "b"], {"imgs/a/big.png": png_header(20000, 20000)})}),
    Case("plot-garbage-study-db", ["plot", "results/fake"], "study.db",
         {"results/fake/study.db": bytes(range(256)) * 20}),
    Case("report-garbage-study-db", ["report", "results/fake"], "study.db",
         {"results/fake/study.db": bytes(range(256)) * 20}),
    Case("export-garbage-study-db", ["export", "results/fake"], "study.db",
         {"results/fake/study.db": bytes(range(256)) * 20}),
    Case("plot-truncated-study-db", ["plot", "results/fake"], "study.db",
         {"results/fake/study.db": lambda r: _study_db(r).read_bytes()[:8000]}),
    Case("search-garbage-study-db", ["search", "s.toml"], "study.db",
         {"s.toml": study_toml(name="tiny"), "results/tiny/study.db": b"SQLite format 3\x00" + b"\xff" * 5000}),
    Case("ablate-garbage-store", ["ablate", "a.toml"], "ablation.db",
         {"a.toml": ABLATION, "results/tiny/ablation.db": b"not a database at all" * 100}),
    Case("ablate-report-only-truncated-store", ["ablate", "a.toml", "--report-only"], "ablation.db",
         {"a.toml": ABLATION, "results/tiny/ablation.db": lambda r: _study_db(r).read_bytes()[:5000]}),
    Case("storage-read-only", ["search", "s.toml", "--storage", "sqlite:///ro/study.db"], "run.storage",
         {"s.toml": study_toml()}, read_only="ro"),
    Case("results-dir-read-only", ["search", "s.toml", "--results-dir", "ro/results"], "run.results_dir",
         {"s.toml": study_toml()}, read_only="ro"),
    Case("toml-binary-garbage", ["search", "s.toml"], "s.toml", {"s.toml": bytes(range(256)) * 8}),
    Case("toml-nul-in-name", ["search", "s.toml"], "name",
         {"s.toml": lambda r: study_toml()(r).replace('name = "tiny"', 'name = "ti\\u0000ny"')}),
    Case("toml-nested-100000", ["search", "s.toml"], "nested too deeply",
         {"s.toml": "x = " + "[" * 100_000 + "]" * 100_000 + "\n"}),
    Case("toml-300-char-name", ["search", "s.toml"], "name",
         {"s.toml": lambda r: study_toml()(r).replace('name = "tiny"', f'name = "{"n" * 300}"')}),
    # ---------------------------------------------------------------- info
    Case("info-num-classes-0", ["info", "b0", "--num-classes", "0"], "argument --num-classes"),
    Case("info-in-channels-huge", ["info", "b0", "--in-channels", "100000"], "argument --in-channels"),
    Case("info-resolution-nan", ["info", "b0", "--resolution", "nan"], "argument --resolution"),
    Case("info-arch-too-deep", ["info", "stem_c32_s2,ir_r99999_k3_s1_e6_c16,head_c64_do0_dp0_silu"], "blocks"),
    Case("info-arch-int-overflow", ["info", "stem_c32_s2,ir_r" + "9" * 5000 + "_k3_s1_e6_c16,head_c64_do0_dp0_silu"],
         "arch string"),
    Case("info-arch-file-binary", ["info", "arch.txt"], "arch.txt", {"arch.txt": b"\x00\xff\xfe" * 50}),
    Case("info-arch-file-json-nan", ["info", "arch.json"], "arch.json",
         {"arch.json": '{"stages": [{"repeats": 1, "kernel": 3, "stride": 1, "expand": NaN, "channels": 16}], '
                       '"stem_channels": 32, "stem_stride": 2, "head_channels": 64}'}),
    Case("info-arch-control-chars", ["info", "b0\x1b[2J"], "argument ARCH"),
    # ---------------------------------------------------------------- scale
    Case("scale-alpha-below-1", ["scale", "b0", "--alpha", "0.5"], "argument --alpha"),
    Case("scale-gamma-inf", ["scale", "b0", "--gamma", "inf"], "argument --gamma"),
    Case("scale-resolution-huge", ["scale", "b0", "--resolution", "100000"], "argument --resolution"),
    Case("scale-family-too-large", ["scale", "b0", "--phi", "10", "--alpha", "4"], "--phi 10"),
    # ---------------------------------------------------------------- search
    Case("search-n-trials-0", ["search", "s.toml", "--n-trials", "0"], "argument --n-trials", {"s.toml": study_toml()}),
    Case("search-timeout-inf", ["search", "s.toml", "--timeout", "inf"], "argument --timeout",
         {"s.toml": study_toml()}),
    Case("search-seed-negative", ["search", "s.toml", "--seed", "-1"], "argument --seed", {"s.toml": study_toml()}),
    Case("search-cpus-nan", ["search", "s.toml", "--cpus-per-trial", "nan"], "argument --cpus-per-trial",
         {"s.toml": study_toml()}),
    Case("search-fork-bad-name", ["search", "s.toml", "--fork", "../x"], "argument --fork", {"s.toml": study_toml()}),
    Case("search-storage-not-a-url", ["search", "s.toml", "--storage", "x.db"], "run.storage",
         {"s.toml": study_toml()}),
    Case("search-storage-control-char", ["search", "s.toml", "--storage", "sqlite:///a\x07.db"], "argument --storage",
         {"s.toml": study_toml()}),
    Case("search-missing-file", ["search", "nope.toml"], "nope.toml"),
    Case("search-file-is-a-folder", ["search", "dir.toml"], "dir.toml", {"dir.toml/.keep": ""}),
    Case("search-space-expand-inf", ["search", "s.toml"], "space",
         {"s.toml": lambda r: study_toml()(r).replace("expands = [1, 3]", "expands = [1, inf]")}),
    Case("search-space-repeats-delta-huge", ["search", "s.toml"], "space.repeats_delta",
         {"s.toml": lambda r: study_toml()(r).replace("repeats_delta = 0", "repeats_delta = 9223372036854775807")}),
    Case("search-unknown-key", ["search", "s.toml"], "train.lr_max",
         {"s.toml": lambda r: study_toml()(r).replace("[train]\n", "[train]\nlr_max = 1\n")}),
    Case("search-results-dir-is-a-file", ["search", "s.toml", "--results-dir", "afile/results"], "run.results_dir",
         {"s.toml": study_toml(), "afile": "x"}),
    Case("search-results-dir-name-too-long", ["search", "s.toml", "--results-dir", "r" * 300], "run.results_dir",
         {"s.toml": study_toml()}),
    Case("search-journal-garbage", ["search", "s.toml", "--storage", "journal:j.log"], "j.log",
         {"s.toml": study_toml(), "j.log": b"\x80\x81 not a journal\n" * 10}),
    Case("search-data-root-missing", ["search", "s.toml"], "data.root",
         {"s.toml": study_toml(data={"dataset": "fashion_mnist", "root": "no/such/dir"})}),
    Case("search-key-with-control-chars", ["search", "s.toml"], "unknown key",
         {"s.toml": lambda r: study_toml()(r).replace("[train]\n", '[train]\n"a\\u2028b\\rc" = 1\n')}),
    # ---------------------------------------------------------------- ablate
    Case("ablate-seeds-0", ["ablate", "a.toml", "--seeds", "0"], "argument --seeds", {"a.toml": ABLATION}),
    Case("ablate-file-seeds-0", ["ablate", "a.toml"], "seeds", {"a.toml": ABLATION.replace("seeds = 2", "seeds = 0")}),
    Case("ablate-missing-file", ["ablate", "none.toml"], "none.toml"),
    Case("ablate-base-400-chars", ["ablate", "a.toml"], "base",
         {"a.toml": ABLATION.replace(f'base = "{TINY_ARCH}"', f'base = "{"y" * 400}"')}),
    Case("ablate-variant-bad-stage", ["ablate", "a.toml"], "variant.k5",
         {"a.toml": ABLATION.replace('"no_se"]', '"no_se", "k5"]')
          + '[variant.k5]\noverrides = [{stage = 99, override = "k5"}]\n'}),
    Case("ablate-arch-too-large", ["ablate", "a.toml", "--dry-run"], "blocks",
         {"a.toml": ABLATION.replace("ir_r2_k3", "ir_r2000_k3")}),
    Case("ablate-inert-momentum", ["ablate", "a.toml"], "train.momentum",
         {"a.toml": ABLATION.replace("lr = 0.05", "lr = 0.05\noptimizer = \"adamw\"\nmomentum = 0.5")}),
    Case("ablate-storage-read-only", ["ablate", "a.toml", "--storage", "sqlite:///ro/runs.db"], "run.storage",
         {"a.toml": ABLATION}, read_only="ro"),
    Case("ablate-results-read-only", ["ablate", "a.toml"], "run.results_dir",
         {"a.toml": ABLATION + '[run]\nresults_dir = "ro/results"\n'}, read_only="ro"),
    Case("search-journal-read-only", ["search", "s.toml", "--storage", "journal:ro/j.log"], "run.storage",
         {"s.toml": study_toml()}, read_only="ro"),
    Case("ablate-lr-nan", ["ablate", "a.toml"], "train.lr", {"a.toml": ABLATION.replace("lr = 0.05", "lr = nan")}),
    Case("ablate-results-dir-is-a-file", ["ablate", "a.toml"], "run.results_dir",
         {"a.toml": ABLATION + '[run]\nresults_dir = "afile/x"\n', "afile": "x"}),
    Case("ablate-one-class-folder", ["ablate", "a.toml"], "at least 2 class",
         {"a.toml": ABLATION.replace('dataset = "synthetic"', 'dataset = "folder"\nroot = "imgs"').replace(
             "val_size = 64", "val_size = 1"), **image_folder(["solo"])}),
    # ---------------------------------------------------------------- plot
    Case("plot-missing-study", ["plot", "results/none"], "results/none"),
    Case("plot-ref-acc-2", ["plot", "results/fake", "--ref-acc", "2"], "argument --ref-acc",
         {"results/fake/study.db": FAKE}),
    Case("plot-ref-macs-nan", ["plot", "results/fake", "--ref-macs", "nan"], "argument --ref-macs",
         {"results/fake/study.db": FAKE}),
    Case("plot-unknown-choice", ["plot", "results/fake", "--choice", "nope"], "choice",
         {"results/fake/study.db": FAKE}),
    Case("plot-two-without-compare", ["plot", "results/fake", "results/fake"], "--compare",
         {"results/fake/study.db": FAKE}),
    Case("plot-out-is-a-file", ["plot", "results/fake", "--out", "afile"], "--out",
         {"results/fake/study.db": FAKE, "afile": "x"}),
    Case("plot-journal-garbage", ["plot", "j.log"], "j.log", {"j.log": b"\xff\xfe garbage\n" * 20}),
    # ---------------------------------------------------------------- report
    Case("report-ref-acc-nan", ["report", "results/fake", "--ref-acc", "nan"], "argument --ref-acc",
         {"results/fake/study.db": FAKE}),
    Case("report-unknown-study-name", ["report", "results/fake", "--study", "nope"], "study_name",
         {"results/fake/study.db": FAKE}),
    Case("report-out-under-a-file", ["report", "results/fake", "--out", "afile/rep"], "--out",
         {"results/fake/study.db": FAKE, "afile": "x"}),
    Case("report-sqlite-url-missing", ["report", "sqlite:///nothing.db"], "nothing.db"),
    # ---------------------------------------------------------------- export
    Case("export-rank-0", ["export", "results/fake", "--rank", "0"], "argument --rank",
         {"results/fake/study.db": FAKE}),
    Case("export-family-nan", ["export", "results/fake", "--family", "nan"], "argument --family",
         {"results/fake/study.db": FAKE}),
    Case("export-family-1e9", ["export", "results/fake", "--family", "1e9"], "argument --family",
         {"results/fake/study.db": FAKE}),
    Case("export-base-resolution-0", ["export", "results/fake", "--family", "1", "--base-resolution", "0"],
         "argument --base-resolution", {"results/fake/study.db": FAKE}),
    Case("export-no-such-trial", ["export", "results/fake", "--trial", "99999"], "trial",
         {"results/fake/study.db": FAKE}),
    Case("export-out-is-a-file", ["export", "results/fake", "--out", "afile"], "--out",
         {"results/fake/study.db": FAKE, "afile": "x"}),
    Case("export-weights-of-a-trained-study", ["export", "results/fake", "--weights", "w.pt"], "--weights",
         {"results/fake/study.db": FAKE}),
    Case("export-finetune-without-weights", ["export", "results/fake", "--finetune", "2"], "--finetune",
         {"results/fake/study.db": FAKE}),
    Case("export-finetune-negative", ["export", "results/fake", "--weights", "w.pt", "--finetune", "-1"],
         "argument --finetune", {"results/fake/study.db": FAKE}),
    Case("export-weights-under-a-file", ["export", "results/fake", "--weights", "afile/w.pt"], "--weights",
         {"results/fake/study.db": FAKE, "afile": "x"}),
    Case("search-supernet-bad-sampling", ["search", "s.toml"], "supernet.sampling",
         {"s.toml": study_toml(evaluator={"kind": "supernet"}, supernet={"sampling": "greedy"})}),
    Case("search-supernet-unknown-key", ["search", "s.toml"], "supernet.epoch",
         {"s.toml": study_toml(evaluator={"kind": "supernet"}, supernet={"epoch": 3})}),
    Case("search-supernet-table-without-kind", ["search", "s.toml"], "supernet",
         {"s.toml": study_toml(supernet={"epochs": 3})}),
    # ---------------------------------------------------------------- bench
    Case("bench-unknown-suite", ["bench", "--suite", "nope"], "--suite"),
    Case("bench-out-is-a-folder", ["bench", "--suite", "flops", "--quick", "--out", "results"], "--out",
         {"results/.keep": ""}),
    Case("bench-out-under-a-file", ["bench", "--suite", "flops", "--quick", "--out", "afile/b.json"], "--out",
         {"afile": "x"}),
    Case("bench-suite-control-char", ["bench", "--suite", "flops\n"], "argument --suite"),
]


# ------------------------------------------------------------------------------------------ harness

_SIDECARS = ("-wal", "-shm", "-journal", ".nas-lock")


def snapshot(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under ``root``: kind, size and content hash (SQLite sidecars left out)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if rel.endswith(_SIDECARS):
            continue
        if p.is_dir():
            out[rel] = ("dir", 0, "")
        else:
            data = p.read_bytes()
            out[rel] = ("file", len(data), hashlib.sha256(data).hexdigest())
    return out


def write_files(root: Path, files: dict[str, Any]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is FAKE:
            db = _study_db(root)
            if db != path:
                shutil.move(str(db), path)
            with sqlite3.connect(path) as con:  # as the search leaves it: WAL mode (reading then changes nothing)
                con.execute("PRAGMA journal_mode=WAL")
            con.close()
            continue
        if callable(content):
            content = content(root)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # a flag refused by its argparse type
        return int(exc.code or 0)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case: Case, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NAS_HARNESS_DATA", raising=False)
    write_files(tmp_path, case.files)
    with read_only_dir(tmp_path / case.read_only) if case.read_only else _nothing():
        before = snapshot(tmp_path)
        code = run_cli(case.argv)
        after = snapshot(tmp_path)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert code == 2, f"exit {code}; stderr:\n{err}"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert "Traceback" not in err
    assert lines[0].startswith(f"nas-harness {case.argv[0]}: error: "), lines[0]
    assert case.expect in lines[0], f"{case.expect!r} not in {lines[0]!r}"
    assert after == before, f"files changed: {sorted(set(after.items()) ^ set(before.items()))[:5]}"


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def test_the_table_covers_every_command_and_more_than_20_cases_of_our_own() -> None:
    commands = {c.argv[0] for c in CASES}
    assert commands == {"info", "scale", "search", "ablate", "plot", "report", "export", "bench"}
    assert len(CASES) - 24 >= 20  # 24 rows are the inputs quoted in the issue
