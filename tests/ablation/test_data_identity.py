"""Issue #21: ablations and scaling curves follow the studies' rule for the data's identity
(:func:`nas_harness.data.content_fingerprint`): where the data comes from a named folder, its content fingerprint
is part of the stored recipe (``data.content``).  Re-running on another image folder (same keys, other images) is
refused in one line naming ``data.content`` before anything is trained or written; the same images in another
place are the same data; runs stored before data identities get this data's recorded."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
from helpers.studies import tiny_ablation, tiny_curves

from nas_harness.cli import main
from nas_harness.errors import ConfigError

_FOLDER = '[data]\ndataset = "folder"\nroot = "{root}"\nresolution = 16\nval_size = 2\n'
_SYNTH = '[data]\ndataset = "synthetic"\nresolution = 16\nval_size = 64\n'


def image_folder(root: Path, green: int = 0) -> Path:
    import io

    from PIL import Image

    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(6):
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), (40 * i + (100 if c == "b" else 0), green, 0)).save(buf, format="PNG")
            (root / c / f"{i}.png").write_bytes(buf.getvalue())
    return root


def on_folder(text: str, root: Path) -> str:
    assert _SYNTH in text
    return text.replace(_SYNTH, _FOLDER.format(root=root))


def test_an_ablation_on_other_images_is_refused_and_the_same_images_elsewhere_are_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    first = image_folder(tmp_path / "imgs")
    (tmp_path / "a.toml").write_text(on_folder(tiny_ablation(seeds=1), first))
    assert main(["ablate", "a.toml", "--no-progress", "--no-figure"]) == 0
    db = tmp_path / "results" / "tiny" / "ablation.db"
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    assert len(study.user_attrs["recipe"]["data"]["content"]) == 32
    capsys.readouterr()

    other = image_folder(tmp_path / "other", green=90)  # other images, same layout and keys
    before = db.read_bytes()
    (tmp_path / "a.toml").write_text(on_folder(tiny_ablation(seeds=1), other))
    assert main(["ablate", "a.toml", "--no-progress", "--no-figure"]) == 2
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.strip()]
    assert len(err) == 1 and "data.content" in err[0] and "different recipe" in err[0], err
    assert db.read_bytes() == before

    moved = tmp_path / "moved"
    shutil.copytree(first, moved)  # the same images elsewhere: the same data, nothing to run
    (tmp_path / "a.toml").write_text(on_folder(tiny_ablation(seeds=1), moved))
    assert main(["ablate", "a.toml", "--no-progress", "--no-figure"]) == 0
    assert "0 to run" in capsys.readouterr().err


def test_scaling_curves_on_other_images_are_refused(tmp_path: Path) -> None:
    from nas_harness._config import read_toml
    from nas_harness.scaling_curves import CurvesStore
    from nas_harness.scaling_curves.config import parse_scaling_curves

    def cfg(root: Path):
        (tmp_path / "c.toml").write_text(on_folder(tiny_curves(seeds=1, curves="width = [1.0, 2.0]"), root))
        raw = read_toml(tmp_path / "c.toml")
        raw.setdefault("run", {})["results_dir"] = str(tmp_path / "results")
        return parse_scaling_curves(raw)

    first = cfg(image_folder(tmp_path / "imgs"))
    CurvesStore(first.storage_url, first.name).bind(first)
    other = cfg(image_folder(tmp_path / "other", green=90))
    with pytest.raises(ConfigError, match=r"data\.content changed"):
        CurvesStore(other.storage_url, other.name).bind(other)
    shutil.copytree(tmp_path / "imgs", tmp_path / "moved")
    moved = cfg(tmp_path / "moved")
    CurvesStore(moved.storage_url, moved.name).bind(moved)


def test_runs_stored_before_data_identities_get_this_datas_recorded(tmp_path: Path) -> None:
    from nas_harness._config import read_toml
    from nas_harness.ablation.config import parse_ablation
    from nas_harness.ablation.runner import AblationStore
    from nas_harness.data import content_fingerprint

    (tmp_path / "a.toml").write_text(on_folder(tiny_ablation(seeds=1), image_folder(tmp_path / "imgs")))
    raw = read_toml(tmp_path / "a.toml")
    raw.setdefault("run", {})["results_dir"] = str(tmp_path / "results")
    cfg = parse_ablation(raw)
    store = AblationStore(cfg.storage_url, cfg.name)
    store.bind(cfg)
    old = store.study.user_attrs["recipe"]
    del old["data"]["content"]
    store.study.set_user_attr("recipe", old)  # as an older version stored it
    said: list[str] = []
    from nas_harness.evaluation.store import JobStore

    JobStore.bind(store, cfg.replace_train(cfg.train.replace(threads=1)).recipe(),
                  {v: str(a) for v, a in cfg.archs.items()}, kind="ablation", what="runs of ablation", data=cfg.data,
                  log=said.append)
    assert store.study.user_attrs["recipe"]["data"]["content"] == content_fingerprint(cfg.data)
    assert said and "predates data identities" in said[0]


def test_built_in_data_keeps_the_recipe_unchanged(tmp_path: Path) -> None:
    from nas_harness._config import read_toml
    from nas_harness.ablation.config import parse_ablation
    from nas_harness.ablation.runner import AblationStore

    (tmp_path / "a.toml").write_text(tiny_ablation(seeds=1))
    raw = read_toml(tmp_path / "a.toml")
    raw.setdefault("run", {})["results_dir"] = str(tmp_path / "results")
    cfg = parse_ablation(raw)
    store = AblationStore(cfg.storage_url, cfg.name)
    store.bind(cfg)
    assert "content" not in store.study.user_attrs["recipe"]["data"]
