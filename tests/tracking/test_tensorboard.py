"""A search's TensorBoard log folder, read back with TensorBoard's own event reader (``EventAccumulator``): one
folder per trial with its record and per-epoch curve, the study's folder with one point per trial and its
figures; a re-run writes nothing twice; a log folder that cannot be written is one warning line."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from helpers.studies import tiny_dict

from nas_harness.study.config import validate
from nas_harness.study.search import run_search

pytestmark = pytest.mark.slow


def _events(folder: Path):
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0, ea.IMAGES: 0})
    acc.Reload()
    return acc


def _text(acc, tag: str) -> str:
    return acc.Tensors(f"{tag}/text_summary")[0].tensor_proto.string_val[0].decode()


def test_tensorboard_log_folder_read_back_with_tensorboards_reader(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    d = tiny_dict(tmp_path, sampler={"kind": "random"}, train={"epochs": 2}, run={"n_trials": 2, "plots": True},
                  tracking={"tensorboard": True})
    cfg = validate(d)
    lines: list[str] = []
    run_search(cfg, log=lines.append)
    assert not [x for x in lines if "warning" in x], lines
    root = cfg.study_dir / "tensorboard" / "tiny"
    trials = optuna.load_study(study_name="tiny", storage=cfg.storage_url).trials
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["trial-0", "trial-1"]
    for t in trials:
        ua = t.user_attrs
        acc = _events(root / f"trial-{t.number}")
        scalars = acc.Tags()["scalars"]
        assert {"val_acc", "val_acc_ci_low", "val_acc_ci_high", "macs", "params", "epochs"} <= set(scalars)
        assert acc.Scalars("val_acc")[0].value == pytest.approx(ua["val_acc"], rel=1e-6)
        assert acc.Scalars("macs")[0].value == pytest.approx(ua["macs"], rel=1e-6)
        assert acc.Scalars("val_acc_ci_low")[0].value < ua["val_acc"] < acc.Scalars("val_acc_ci_high")[0].value
        curve = {e.step: e.value for e in acc.Scalars("per_epoch.reward")}
        assert curve == pytest.approx(dict(t.intermediate_values), rel=1e-6) and len(curve) == 2
        params = _text(acc, "params")
        assert f"| arch | {ua['arch']} |" in params and "| seed | 0 |" in params and "| device | cpu |" in params
    study = _events(root)
    per_trial = {e.step: e.value for e in study.Scalars("trial/val_acc")}
    assert per_trial == pytest.approx({t.number: t.user_attrs["val_acc"] for t in trials}, rel=1e-6)
    assert "figures/accuracy_vs_macs.png" in study.Tags()["images"]
    assert "| run.n_trials | 2 |" in _text(study, "study/settings")
    # a second run of the full study writes no trial twice
    before = {p: sorted(x.name for x in p.iterdir()) for p in root.iterdir() if p.is_dir()}
    run_search(cfg, log=lines.append)
    assert {p: sorted(x.name for x in p.iterdir()) for p in root.iterdir() if p.is_dir()} == before


def test_a_log_folder_that_cannot_be_written_is_one_warning_and_the_study_completes(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    d = tiny_dict(tmp_path, sampler={"kind": "random"}, run={"n_trials": 1},
                  tracking={"tensorboard": True, "tensorboard_dir": str(blocker / "tb")})
    lines: list[str] = []
    summary = run_search(validate(d), log=lines.append)
    assert summary.n_complete == 1
    warnings = [x for x in lines if "warning" in x]
    assert len(warnings) == 1 and "tensorboard" in warnings[0] and "goes on" in warnings[0], lines


def test_the_scaling_search_logs_each_triple(tmp_path: Path) -> None:
    from nas_harness.study.scaling_search import run_scaling_search

    grid = {"alphas": [1.0, 2.0], "betas": [1.0], "gammas": [1.0, 1.42], "tolerance": 0.05}
    cfg = validate(tiny_dict(tmp_path, scaling=grid, tracking={"tensorboard": True}))
    lines: list[str] = []
    run_scaling_search(cfg, log=lines.append)
    assert not [x for x in lines if "warning" in x], lines
    root = cfg.study_dir / "tensorboard" / "tiny-scaling"  # beside the study's own runs
    study = optuna.load_study(study_name="tiny-scaling", storage=cfg.storage_url)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["trial-0", "trial-1"]
    for t in study.trials:
        params = _text(_events(root / f"trial-{t.number}"), "params")
        assert f"| gamma | {t.params['gamma']} |" in params and f"| arch | {t.user_attrs['arch']} |" in params


def test_settings_table_renders_as_a_two_column_table() -> None:
    """The text summaries are Markdown tables from report.document; a '|' in a value stays in its cell."""
    markdown = pytest.importorskip("markdown")  # what TensorBoard's text plugin renders with
    from nas_harness.tracking._tensorboard import _table

    html = markdown.markdown(_table({"space": "k3|k5", "seed": "0"}), extensions=["markdown.extensions.tables"])
    assert html.count("<tr>") == 3 and html.count("<td>") == 4 and "<td>k3|k5</td>" in html
