"""The shared trial function: metrics, per-epoch reports, early stop propagation, and the result cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas_harness.data import ProxyConfig
from nas_harness.flops import count_macs, count_params
from nas_harness.presets import efficientnet_b0
from nas_harness.scaling import scale_arch
from nas_harness.train import TrainConfig
from nas_harness.trial import ResultCache, TrialSpec, analytic_cost, cache_key, run_trial

ARCH = scale_arch(efficientnet_b0(), width=0.25, depth=0.34)
DATA = ProxyConfig(dataset="synthetic", train_subset=256, val_size=64, resolution=16)
TRAIN = TrainConfig.from_dict({"epochs": 2, "batch_size": 64, "optimizer": "adamw", "lr": 0.01, "device": "cpu",
                               "threads": 1, "augment": [], "bn_recalibrate": 1})


def _spec(**kw) -> TrialSpec:
    return TrialSpec(**{"arch": ARCH, "data": DATA, "train": TRAIN, "seed": 0, "stem_stride": 1,
                        "macs_resolution": 224, "macs_num_classes": 1000, **kw})


def test_analytic_cost_matches_flops_module() -> None:
    macs, params = analytic_cost(_spec(macs_resolution=192, macs_num_classes=10))
    assert macs == count_macs(ARCH, 192, num_classes=10).total
    assert params == count_params(ARCH, num_classes=10)


@pytest.mark.slow
def test_run_trial_metrics_reports_and_cache(tmp_path: Path) -> None:
    epochs = []
    cache = ResultCache(tmp_path / "cache")
    m = run_trial(_spec(evaluate_test=True), report=lambda ep: epochs.append(ep.epoch), cache=cache)
    assert epochs == [1, 2]
    assert m.epochs == m.epochs_planned == 2 and m.full_budget is True and m.cached is False
    assert m.macs == count_macs(ARCH, 224).total and m.params == count_params(ARCH)
    assert 0 <= m.val_acc_final <= m.val_acc <= 1 and 0 <= m.test_acc <= 1
    assert m.arch == str(ARCH) and m.device == "cpu" and m.images_per_s > 0
    assert m.wall_time_s >= m.train_time_s > 0
    # same spec: served from the cache (also by a new cache object on the same folder = another process)
    again = run_trial(_spec(evaluate_test=True), report=lambda ep: epochs.append(-1),
                      cache=ResultCache(tmp_path / "cache"))
    assert again.cached is True and again.val_acc == m.val_acc and -1 not in epochs
    # a different seed is a different key: trained again
    assert run_trial(_spec(seed=1, train=TRAIN.replace(epochs=1)), cache=cache).cached is False


@pytest.mark.slow
def test_same_seed_same_result() -> None:
    spec = _spec(train=TRAIN.replace(epochs=1))
    assert run_trial(spec).val_acc == run_trial(spec).val_acc


def test_report_exception_propagates_and_nothing_cached(tmp_path: Path) -> None:
    class Stop(Exception):
        pass

    def report(ep):
        raise Stop

    cache = ResultCache(tmp_path)
    with pytest.raises(Stop):
        run_trial(_spec(train=TRAIN.replace(epochs=1)), report=report, cache=cache)
    assert len(cache) == 0 and not list(tmp_path.glob("*.json"))


def test_cache_key_depends_on_what_matters() -> None:
    k = cache_key(_spec(), "fp")
    assert k == cache_key(_spec(), "fp")
    assert k != cache_key(_spec(), "other-data")
    assert k != cache_key(_spec(seed=1), "fp")
    assert k != cache_key(_spec(train=TRAIN.replace(lr=0.02)), "fp")
    assert k != cache_key(_spec(arch=ARCH.replace_stages(se=None)), "fp")
    assert k != cache_key(_spec(macs_resolution=192), "fp")


@pytest.mark.parametrize("content", ["{not json", "{}", '{"val_acc": "high", "full_budget": true, "arch": "a"}',
                                     '{"val_acc": 1.5, "full_budget": true, "arch": "a"}', "[1, 2]",
                                     '{"val_acc": 0.5, "full_budget": false, "arch": "a"}',
                                     '{"val_acc": 0.5, "full_budget": true, "arch": "other"}', "[" * 100_000])
def test_result_cache_entries_that_do_not_validate_are_misses(tmp_path: Path, content: str) -> None:
    (tmp_path / "abc.json").write_text(content)
    assert ResultCache(tmp_path).get("abc", "a") is None


def test_result_cache_round_trip(tmp_path: Path) -> None:
    from nas_harness.records import TrialRecord

    rec = TrialRecord(arch="a", val_acc=0.5, full_budget=True, macs=10, versions={"torch": "x"})
    ResultCache(tmp_path).put("abc", rec)
    assert ResultCache(tmp_path).get("abc", "a") == rec


@pytest.mark.slow
def test_checkpoint_dir_resumes_a_killed_trial_mid_training(tmp_path: Path) -> None:
    """Stopped after epoch 1 of 2, the same trial resumes from its checkpoint and matches an unbroken run."""
    spec = _spec(evaluate_test=True)
    whole = run_trial(spec)

    class Stop(Exception):
        pass

    def stop(ep) -> None:
        raise Stop

    with pytest.raises(Stop):
        run_trial(spec, report=stop, checkpoint_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1  # epoch 1 is on disk
    seen: list[int] = []
    m = run_trial(spec, report=lambda ep: seen.append(ep.epoch), checkpoint_dir=tmp_path)
    assert seen == [2] and m.resumed_from_checkpoint is True
    assert (m.val_acc, m.test_acc, m.steps) == (whole.val_acc, whole.test_acc, whole.steps)
    assert not list(tmp_path.glob("*.pt"))  # removed once the trial finished
