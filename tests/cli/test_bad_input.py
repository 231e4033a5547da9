"""Issue #12, table-driven: every hostile or broken input to every command ends in exit code 2, ONE line on
stderr naming the field, flag or file (no traceback), and leaves the working directory untouched (nothing
created under results/, nothing changed in an existing study folder).

Each case runs in a fresh directory holding the files it needs; the directory is snapshotted (every path with
its size and content hash) before and after.  SQLite's sidecar files (``-wal``, ``-shm``) and the storage lock
are not results and are left out of the comparison; the database file itself is compared.
"""

from __future__ import annotations

import hashlib
import os
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
from helpers.studies import TINY_ARCH, tiny_ablation, tiny_curves, tiny_dict, to_toml, with_run

from nas_harness.cli import main

ABLATION = tiny_ablation()
CURVES = tiny_curves()


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


def sqlite_bytes(*sql: str) -> Callable[[Path], bytes]:
    """A SQLite file made by running ``sql`` (another application's database)."""

    def make(root: Path) -> bytes:
        tmp = root / ".made.db"
        con = sqlite3.connect(tmp)
        for statement in sql:
            con.execute(statement)
        con.commit()
        con.close()
        data = tmp.read_bytes()
        tmp.unlink()
        return data

    return make


def optuna_study_bytes(name: str = "tiny", **user_attrs: Any) -> Callable[[Path], bytes]:
    """A SQLite file holding a study of ``name`` made with plain Optuna (one finished trial), with ``user_attrs``."""

    def make(root: Path) -> bytes:
        import optuna

        tmp = root / ".made.db"
        study = optuna.create_study(storage=f"sqlite:///{tmp}", study_name=name, direction="maximize")
        for k, v in user_attrs.items():
            study.set_user_attr(k, v)
        study.add_trial(optuna.trial.create_trial(value=0.5, params={}, distributions={}))
        del study
        import gc

        gc.collect()
        with sqlite3.connect(tmp) as con:  # WAL mode, as a storage opened by a search leaves it (switching the
            con.execute("PRAGMA journal_mode=WAL")  # mode is no change to what is stored)
        con.close()
        data = tmp.read_bytes()
        tmp.unlink()
        return data

    return make


def tampered(key: str, value: Any) -> Callable[[Path], bytes]:
    """The fake study with one stored attribute changed behind nas-harness's back: ``trial.KEY`` (trial 5's
    user attribute) or ``study.KEY``."""

    def make(root: Path) -> bytes:
        import json

        db = study_folder(root / ".made", "fake") / "study.db"
        con = sqlite3.connect(db)
        scope, name = key.split(".", 1)
        if scope == "trial":
            con.execute("update trial_user_attributes set value_json = ? where key = ? and trial_id = "
                        "(select trial_id from trials where number = 5)", (json.dumps(value), name))
        else:
            con.execute("update study_user_attributes set value_json = ? where key = ?", (json.dumps(value), name))
        con.commit()
        con.close()
        data = db.read_bytes()
        shutil.rmtree(root / ".made")
        return data

    return make


FAKE = "fake-study"  # a real study built by tests/helpers/fakes.py, copied into results/fake/
FIFO = "named-pipe"  # a FIFO made in the file's place (reading it would block forever)
ZERO = "dev-zero"  # a symlink to /dev/zero in the file's place (reading it would never end)


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
    Case("info-fvcore-16384", ["info", "b0", "--resolution", "16384", "--fvcore"], "--fvcore"),
    Case("info-fvcore-b7-4096", ["info", "b7", "--resolution", "4096", "--fvcore"], "GiB"),
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
         {"a.toml": with_run(ABLATION, 'results_dir = "ro/results"')}, read_only="ro"),
    Case("search-journal-read-only", ["search", "s.toml", "--storage", "journal:ro/j.log"], "run.storage",
         {"s.toml": study_toml()}, read_only="ro"),
    Case("ablate-lr-nan", ["ablate", "a.toml"], "train.lr", {"a.toml": ABLATION.replace("lr = 0.05", "lr = nan")}),
    Case("ablate-results-dir-is-a-file", ["ablate", "a.toml"], "run.results_dir",
         {"a.toml": with_run(ABLATION, 'results_dir = "afile/x"'), "afile": "x"}),
    Case("ablate-one-class-folder", ["ablate", "a.toml"], "at least 2 class",
         {"a.toml": ABLATION.replace('dataset = "synthetic"', 'dataset = "folder"\nroot = "imgs"').replace(
             "val_size = 64", "val_size = 1"), **image_folder(["solo"])}),
    Case("ablate-supernet-bad-sampling", ["ablate", "a.toml"], "supernet.sampling",
         {"a.toml": ABLATION + '\n[supernet]\nsampling = "greedy"\n'}),
    Case("ablate-supernet-space-without-base", ["ablate", "a.toml"], "supernet.space",
         {"a.toml": ABLATION + "\n[supernet]\nspace = { kernels = [5, 7] }\n"}),
    # ---------------------------------------------------------------- scaling-curves
    Case("curves-missing-file", ["scaling-curves", "none.toml"], "none.toml"),
    Case("curves-seeds-0", ["scaling-curves", "c.toml", "--seeds", "0"], "argument --seeds", {"c.toml": CURVES}),
    Case("curves-width-nan", ["scaling-curves", "c.toml"], "curves.width[1] = nan",
         {"c.toml": CURVES.replace("width = [1.0, 2.0]", "width = [1.0, nan]")}),
    Case("curves-depth-inf", ["scaling-curves", "c.toml", "--check"], "curves.depth[1] = inf",
         {"c.toml": CURVES.replace("depth = [1.0, 2.0]", "depth = [1.0, inf]")}),
    Case("curves-width-out-of-range", ["scaling-curves", "c.toml"], "curves.width[1] = 9.0",
         {"c.toml": CURVES.replace("width = [1.0, 2.0]", "width = [1.0, 9.0]")}),
    Case("curves-phi-negative", ["scaling-curves", "c.toml"], "curves.compound_phi[0]",
         {"c.toml": CURVES.replace("compound_phi = [0, 1]", "compound_phi = [-1, 1]")}),
    Case("curves-empty-curve", ["scaling-curves", "c.toml"], "curves.depth: an empty curve",
         {"c.toml": CURVES.replace("depth = [1.0, 2.0]", "depth = []")}),
    Case("curves-one-point", ["scaling-curves", "c.toml"], "curves.resolution: a curve needs at least 2",
         {"c.toml": CURVES.replace("resolution = [1.0, 1.5]", "resolution = [1.5]")}),
    Case("curves-resolution-data-cannot-give", ["scaling-curves", "c.toml"], "curves.resolution[1]",
         {"c.toml": CURVES.replace("resolution = [1.0, 1.5]", "resolution = [1.0, 4.0]").replace(
             "resolution = 16", "resolution = 512")}),
    Case("curves-fit-pad", ["scaling-curves", "c.toml"], "data.fit",
         {"c.toml": CURVES.replace('dataset = "synthetic"', 'dataset = "synthetic"\nfit = "pad"')}),
    Case("curves-unknown-key", ["scaling-curves", "c.toml"], "curves.wdith",
         {"c.toml": CURVES.replace("width = [1.0, 2.0]", "wdith = [1.0, 2.0]")}),
    Case("curves-from-study-not-run", ["scaling-curves", "c.toml"], "curves.from_study",
         {"c.toml": CURVES.replace("compound_phi = [0, 1]", 'compound_phi = [0, 1]\nfrom_study = "s.toml"'),
          "s.toml": study_toml(name="tiny")}),
    Case("curves-garbage-store", ["scaling-curves", "c.toml"], "curves.db",
         {"c.toml": CURVES, "results/tiny/curves.db": b"not a database at all" * 100}),
    Case("curves-report-only-nothing-run", ["scaling-curves", "c.toml", "--report-only"], "run.storage",
         {"c.toml": CURVES}),
    # ---------------------------------------------------------------- plot
    Case("plot-missing-study", ["plot", "results/none"], "results/none"),
    Case("plot-ref-acc-2", ["plot", "results/fake", "--ref-acc", "2"], "argument --ref-acc",
         {"results/fake/study.db": FAKE}),
    Case("plot-ref-macs-nan", ["plot", "results/fake", "--ref-macs", "nan"], "argument --ref-cost/--ref-macs",
         {"results/fake/study.db": FAKE}),
    Case("plot-ref-cost-negative", ["plot", "results/fake", "--ref-cost", "-3"], "argument --ref-cost",
         {"results/fake/study.db": FAKE}),
    Case("search-show-config-without-check", ["search", "s.toml", "--show-config"], "--show-config",
         {"s.toml": study_toml()}),
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
    Case("export-weights-file-exists", ["export", "results/fake", "--weights", "w.pt"], "'w.pt' exists already",
         {"results/fake/study.db": FAKE, "w.pt": "earlier weights"}),
    Case("search-supernet-bad-sampling", ["search", "s.toml"], "supernet.sampling",
         {"s.toml": study_toml(evaluator={"kind": "supernet"}, supernet={"sampling": "greedy"})}),
    Case("search-supernet-unknown-key", ["search", "s.toml"], "supernet.epoch",
         {"s.toml": study_toml(evaluator={"kind": "supernet"}, supernet={"epoch": 3})}),
    Case("search-supernet-table-without-kind", ["search", "s.toml"], "supernet",
         {"s.toml": study_toml(supernet={"epochs": 3})}),
    Case("search-table-cost-without-a-table", ["search", "s.toml"], "objective.cost",
         {"s.toml": study_toml(evaluator={"kind": "surrogate"}, objective={"kind": "multi",
                                                                         "cost": "table:latency_zcu102"})}),
    Case("search-table-cost-unknown-device", ["search", "s.toml"], "objective.cost",
         {"s.toml": study_toml(evaluator={"kind": "table"},
                               objective={"kind": "multi", "cost": "table:latency_tpuv3"})}),
    Case("search-table-cost-as-reward", ["search", "s.toml"], "objective.cost",
         {"s.toml": study_toml(evaluator={"kind": "table"},
                               objective={"cost": "table:macs_thop", "target_macs": None})}),
    Case("search-table-more-trials-than-records", ["search", "s.toml"], "run.n_trials",
         {"s.toml": study_toml(evaluator={"kind": "table"}, objective={"kind": "multi",
                                                                     "cost": "table:throughput_tpuv3"},
                               run={"n_trials": 5100})}),
    # ---------------------------------------------------------------- bench
    Case("bench-unknown-suite", ["bench", "--suite", "nope"], "--suite"),
    Case("bench-out-is-a-folder", ["bench", "--suite", "flops", "--quick", "--out", "results"], "--out",
         {"results/.keep": ""}),
    Case("bench-out-under-a-file", ["bench", "--suite", "flops", "--quick", "--out", "afile/b.json"], "--out",
         {"afile": "x"}),
    Case("bench-suite-control-char", ["bench", "--suite", "flops\n"], "argument --suite"),
    # ---------------------------------------------------------------- issue #21: files that are not files
    Case("search-journal-dev-zero", ["search", "s.toml", "--storage", "journal:/dev/zero"], "/dev/zero",
         {"s.toml": study_toml()}),
    Case("search-journal-fifo", ["search", "s.toml", "--storage", "journal:j.log"], "FIFO",
         {"s.toml": study_toml(), "j.log": FIFO}),
    Case("search-study-db-fifo", ["search", "s.toml"], "study.db",
         {"s.toml": study_toml(name="tiny"), "results/tiny/study.db": FIFO}),
    Case("search-study-db-wal-fifo", ["search", "s.toml"], "study.db-wal",
         {"s.toml": study_toml(name="tiny"), "results/tiny/study.db-wal": FIFO}),
    Case("search-study-toml-fifo", ["search", "s.toml"], "s.toml", {"s.toml": FIFO}),
    Case("search-study-toml-dev-zero", ["search", "s.toml"], "character device", {"s.toml": ZERO}),
    Case("check-latency-table-fifo", ["search", "s.toml", "--check"], "latency table",
         {"s.toml": study_toml(objective={"kind": "budget", "cost": "latency", "max_latency_ms": 5.0},
                               latency={"table": "t.json"}), "t.json": FIFO}),
    Case("info-arch-file-dev-zero", ["info", "arch.txt"], "arch.txt", {"arch.txt": ZERO}),
    Case("report-study-db-fifo", ["report", "results/fake/study.db"], "FIFO", {"results/fake/study.db": FIFO}),
    Case("report-journal-dev-zero", ["report", "journal:z.log"], "z.log", {"z.log": ZERO}),
    Case("ablate-file-fifo", ["ablate", "a.toml"], "a.toml", {"a.toml": FIFO}),
    Case("data-idx-fifo", ["search", "s.toml"], "train-images",
         {"s.toml": study_toml(data={"dataset": "fashion_mnist", "root": "fm"}),
          "fm/train-images-idx3-ubyte": FIFO, "fm/train-labels-idx1-ubyte": FIFO,
          "fm/t10k-images-idx3-ubyte": FIFO, "fm/t10k-labels-idx1-ubyte": FIFO}),
    # ---------------------------------------------------------------- issue #21: storages that keep nothing
    Case("search-storage-memory", ["search", "s.toml", "--storage", "sqlite:///:memory:"], "keeps nothing",
         {"s.toml": study_toml()}),
    Case("search-storage-sqlite-bare", ["search", "s.toml", "--storage", "sqlite://"], "keeps nothing",
         {"s.toml": study_toml()}),
    Case("ablate-storage-memory-uri", ["ablate", "a.toml", "--storage", "sqlite:///file:x?mode=memory&uri=true"],
         "keeps nothing", {"a.toml": ABLATION}),
    # ---------------------------------------------------------------- issue #21: names, paths and URLs
    Case("study-name-final-newline", ["search", "s.toml"], "name",
         {"s.toml": lambda r: study_toml()(r).replace('name = "tiny"', 'name = "tiny\\n"')}),
    Case("report-study-final-newline", ["report", "results/fake", "--study", "fake\n"], "argument --study",
         {"results/fake/study.db": FAKE}),
    Case("search-fork-final-newline", ["search", "s.toml", "--fork", "x\n"], "argument --fork",
         {"s.toml": study_toml()}),
    Case("search-storage-c1-control", ["search", "s.toml", "--storage", "sqlite:///a\x9b2J.db"], "argument --storage",
         {"s.toml": study_toml()}),
    Case("search-storage-bidi-override", ["search", "s.toml", "--storage", "sqlite:///a\u202egpj.db"],
         "argument --storage", {"s.toml": study_toml()}),
    Case("study-results-dir-bidi", ["search", "s.toml"], "run.results_dir",
         {"s.toml": lambda r: study_toml()(r).replace('results_dir = "results"', 'results_dir = "res\\u2067ults"')}),
    Case("study-data-root-c1", ["search", "s.toml"], "data.root",
         {"s.toml": study_toml(data={"dataset": "folder", "root": "im\u0085gs"})}),
    Case("report-path-bidi", ["report", "results/\u202efake"], "argument STUDY"),
    Case("latency-device-final-newline", ["search", "s.toml"], "latency.device",
         {"s.toml": lambda r: study_toml(objective={"kind": "budget", "cost": "latency", "max_latency_ms": 5.0},
                                         latency={"device": "cpuX"})(r).replace('"cpuX"', '"cpu\\n"')}),
    Case("storage-password-in-error-line", ["search", "s.toml", "--storage", "sqlite:///a\x07.db?password=hunter2"],
         "argument --storage", {"s.toml": study_toml()}),
    # ---------------------------------------------------------------- issue #21: foreign and tampered storages
    Case("search-plain-optuna-study-same-name", ["search", "s.toml"], "not created by nas-harness",
         {"s.toml": study_toml(name="tiny"), "results/tiny/study.db": optuna_study_bytes()}),
    Case("search-tampered-comparable", ["search", "s.toml"], "comparable",
         {"s.toml": study_toml(name="tiny"),
          "results/tiny/study.db": optuna_study_bytes(comparable="x", config={"name": "tiny"})}),
    Case("search-foreign-sqlite-app", ["search", "s.toml", "--storage", "sqlite:///app.db"],
         "another application's database",
         {"s.toml": study_toml(), "app.db": sqlite_bytes("create table users(id integer, name text)",
                                                         "insert into users values (1, 'ann')")}),
    Case("search-foreign-sqlite-own-studies-table", ["search", "s.toml", "--storage", "sqlite:///app.db"],
         "another application's database",
         {"s.toml": study_toml(), "app.db": sqlite_bytes("create table studies(id integer, owner text)")}),
    Case("check-foreign-sqlite-app", ["search", "s.toml", "--check", "--storage", "sqlite:///app.db"],
         "another application's database",
         {"s.toml": study_toml(), "app.db": sqlite_bytes("create table users(id integer)")}),
    Case("report-foreign-sqlite-app", ["report", "app.db"], "another application's database",
         {"app.db": sqlite_bytes("create table users(id integer)")}),
    # ---------------------------------------------------------------- issue #21: what info refuses, search does
    Case("check-base-too-wide-head", ["search", "s.toml", "--check"], "base: ",
         {"s.toml": study_toml(base="stem_c32_s2,ir_r1_k3_s1_e6_c16,head_c200000_do0_dp0_silu")}),
    Case("search-base-too-wide", ["search", "s.toml"], "base: ",
         {"s.toml": study_toml(base="stem_c32_s2,ir_r1_k3_s1_e6_c900000,head_c64_do0_dp0_silu")}),
    # ---------------------------------------------------------------- issue #21: stored values trusted
    Case("report-val-acc-string", ["report", "results/fake"], "trial 5: stored val_acc = 'abc'",
         {"results/fake/study.db": tampered("trial.val_acc", "abc")}),
    Case("plot-val-acc-1e308", ["plot", "results/fake"], "trial 5: stored val_acc = 1e+308",
         {"results/fake/study.db": tampered("trial.val_acc", 1e308)}),
    Case("export-macs-negative", ["export", "results/fake"], "stored macs = -5",
         {"results/fake/study.db": tampered("trial.macs", -5)}),
    Case("report-arch-number", ["report", "results/fake"], "stored arch = 5",
         {"results/fake/study.db": tampered("trial.arch", 5)}),
    Case("report-full-budget-text", ["report", "results/fake"], "stored full_budget = 'yes'",
         {"results/fake/study.db": tampered("trial.full_budget", "yes")}),
    Case("report-config-string", ["report", "results/fake"], "study 'fake': stored config = 'x'",
         {"results/fake/study.db": tampered("study.config", "x")}),
    Case("plot-metric-names-number", ["plot", "results/fake"], "stored metric_names = 7",
         {"results/fake/study.db": tampered("study.metric_names", 7)}),
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
        elif not p.is_file():  # a FIFO or a device planted by the case: never read
            out[rel] = ("special", 0, "")
        else:
            data = p.read_bytes()
            out[rel] = ("file", len(data), hashlib.sha256(data).hexdigest())
    return out


def write_files(root: Path, files: dict[str, Any]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is FIFO:
            os.mkfifo(path)
            continue
        if content is ZERO:
            path.symlink_to("/dev/zero")
            continue
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
    assert commands == {"info", "scale", "search", "ablate", "scaling-curves", "plot", "report", "export", "bench"}
    assert len(CASES) - 24 >= 20  # 24 rows are the inputs quoted in the issue
