"""Issue #21: a study trained on data from a named folder records the data's content fingerprint in its
comparability record: the same study re-run on other data (another image folder, a changed image) is refused
in one line naming ``data.content``; the same images in another place are the same data.  Studies on the
built-in data sets keep their records unchanged."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import optuna
import pytest
from helpers.studies import tiny_dict, to_toml

from nas_harness.cli import main
from nas_harness.study.config import validate


def png(shade: int, green: int = 0) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, green, 0)).save(buf, format="PNG")
    return buf.getvalue()


def image_folder(root: Path, green: int = 0) -> Path:
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            (root / c / f"{i}.png").write_bytes(png(40 * i + (100 if c == "b" else 0), green))
    return root


def study_file(tmp_path: Path, root: Path) -> Path:
    d = tiny_dict(tmp_path, data={"dataset": "folder", "root": str(root), "val_size": 2, "train_subset": 8},
                  run={"n_trials": 1})
    path = tmp_path / "s.toml"
    path.write_text(to_toml(d))
    return path


def test_other_data_in_the_same_study_is_refused_and_the_same_data_elsewhere_is_not(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first = image_folder(tmp_path / "imgs")
    assert main(["search", str(study_file(tmp_path, first))]) == 0
    db = tmp_path / "results" / "tiny" / "study.db"
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    content = study.user_attrs["comparable"]["data"]["content"]
    assert len(content) == 32
    capsys.readouterr()

    other = image_folder(tmp_path / "other", green=90)  # other images, same layout
    changed = tmp_path / "changed"
    shutil.copytree(first, changed)
    (changed / "a" / "0.png").write_bytes(png(7))  # one image differs
    for root in (other, changed):
        before = db.read_bytes()
        assert main(["search", str(study_file(tmp_path, root))]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "data.content" in err[0] and "not be comparable" in err[0], err
        assert db.read_bytes() == before

    moved = tmp_path / "moved"
    shutil.copytree(first, moved)  # the same images elsewhere: the same data
    assert main(["search", str(study_file(tmp_path, moved))]) == 0


def test_built_in_data_studies_keep_their_comparability_record() -> None:
    from nas_harness.study.search import data_identity

    cfg = validate(tiny_dict(Path("/nonexistent")))
    assert cfg.data.root is None and data_identity(cfg) is None
    assert "content" not in cfg.comparable()["data"]
