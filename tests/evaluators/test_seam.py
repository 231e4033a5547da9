"""The evaluator seam: a toy evaluator (a closed-form score of the arch) registered in a few lines runs a study,
a confirm and a fidelity comparison, locally and on Ray; the default stays training from scratch with the
fingerprints studies had before evaluators existed."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest
from helpers.studies import tiny_dict

from nas_harness.errors import ConfigError
from nas_harness.evaluation.confirm import ConfirmSettings, run_confirm
from nas_harness.evaluation.fidelity import FidelityConfig, run_fidelity
from nas_harness.evaluators import Evaluator, register_evaluator
from nas_harness.records import TrialRecord
from nas_harness.study.config import validate
from nas_harness.study.search import run_search


def toy_score(arch: str, bias: float) -> float:
    """A closed-form 'accuracy': more SE blocks and larger kernels score higher."""
    return round(0.3 + 0.05 * arch.count("_se") + 0.01 * arch.count("_k5") + bias, 6)


class Toy(Evaluator):
    kind = "toy"
    uses_data = False

    def __init__(self, bias: float = 0.0) -> None:
        self.bias = bias

    def identity(self) -> dict[str, object]:
        return {"kind": self.kind, "bias": self.bias}

    def evaluate(self, spec, report=None, checkpoint=None):  # type: ignore[no-untyped-def]
        return TrialRecord(arch=str(spec.arch), val_acc=toy_score(str(spec.arch), self.bias), val_n=1000,
                           epochs=0.0, full_budget=True, seed=spec.seed)


class ToyOptions(__import__("nas_harness._config", fromlist=["ConfigModel"]).ConfigModel):
    bias: float = 0.0


register_evaluator("toy", lambda options, ctx: Toy(options.bias), ToyOptions)


def _study(tmp_path: Path, **kw: object) -> dict:
    return tiny_dict(tmp_path, **{"sampler": {"kind": "random", "enqueue": ["base"]}, "run": {"n_trials": 4},
                                  "evaluator": {"kind": "toy"}, "toy": {"bias": 0.1}, **kw})


def test_a_toy_evaluator_runs_a_study_confirm_and_fidelity(tmp_path: Path) -> None:
    cfg = validate(_study(tmp_path))
    assert cfg.comparable()["evaluator"] == {"kind": "toy", "options": {"bias": 0.1}}
    summary = run_search(cfg)
    assert summary.n_complete == 4
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    for t in study.trials:
        ua = t.user_attrs
        assert ua["evaluator"] == "toy" and ua["val_acc"] == toy_score(ua["arch"], 0.1)
        assert ua["evaluator_id"] == Toy(0.1).fingerprint and ua["macs"] > 0 and "epochs_planned" not in ua
    # another bias is another experiment: refused on resume, naming the key
    with pytest.raises(ConfigError, match=r"^evaluator\.options\.bias: .*--fork"):
        run_search(validate(_study(tmp_path, toy={"bias": 0.2})))
    # fidelity: does the toy with one bias rank like the toy with another? (same order: tau = 1)
    fid = run_fidelity(cfg.study_dir, FidelityConfig(top=2, random=2, against="toy", options={"bias": 0.3},
                                                     zero_cost=False), progress=False, figure=False, log=print)
    # the 3 distinct search archs (the reference is not a search arch)
    assert fid.summary["n_archs"] == 3 and fid.summary["kendall_tau"] == pytest.approx(1.0)
    assert fid.summary["proxy_evaluator"] == "toy"
    assert fid.hifi.to_dict()["evaluator"] == {"kind": "toy", "bias": 0.3}
    # confirm retrains from scratch, whatever the study's evaluator
    conf = run_confirm(cfg.study_dir, ConfirmSettings(top=1, seeds=1, by="val_acc"), progress=False, figure=False,
                       log=print)
    stored = optuna.load_study(study_name=f"{cfg.name}-confirm", storage=cfg.storage_url).trials
    assert conf.analysis.rows and all(t.user_attrs["evaluator"] == "train" for t in stored)


def test_the_default_evaluator_keeps_old_fingerprints(tmp_path: Path) -> None:
    cfg = validate(tiny_dict(tmp_path))
    assert "evaluator" not in cfg.comparable() and cfg.evaluator.kind == "train"
    assert validate(tiny_dict(tmp_path, evaluator={"kind": "train"})).comparable() == cfg.comparable()


@pytest.mark.parametrize(("extra", "message"), [
    ({"evaluator": {"kind": "nope"}}, r"^evaluator\.kind: 'nope' is not an evaluator; allowed values: .*'toy'"),
    ({"evaluator": {"kind": "toy"}, "toy": {"bias": "x"}}, r"^toy\.bias = 'x' is invalid"),
    ({"evaluator": {"kind": "toy"}, "toy": {"nope": 1}}, r"^toy\.nope: unknown key"),
    ({"toy": {"bias": 0.1}}, r"^toy: the \[toy\] table applies to evaluator\.kind = 'toy' only"),
])
def test_bad_evaluator_tables_are_one_line(tmp_path: Path, extra: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(tiny_dict(tmp_path, **extra))


@pytest.mark.ray
@pytest.mark.slow
def test_a_toy_evaluator_on_ray(tmp_path: Path, ray_local: None) -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import a test module
    d = _study(tmp_path, ray={"cpus_per_trial": 1.0, "max_concurrent": 2})
    d["run"]["backend"] = "ray"
    cfg = validate(d)
    assert run_search(cfg).n_complete == 4
    trials = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials
    assert {t.user_attrs["backend"] for t in trials} == {"ray"}
    assert all(t.user_attrs["val_acc"] == toy_score(t.user_attrs["arch"], 0.1) for t in trials)
    fid = run_fidelity(cfg.study_dir, FidelityConfig(top=2, random=1, against="toy", options={"bias": 0.3},
                                                     zero_cost=False), backend="ray", progress=False, figure=False,
                       log=print)
    assert fid.summary["n_archs"] >= 2 and fid.summary["kendall_tau"] == pytest.approx(1.0)
    conf = run_confirm(cfg.study_dir, ConfirmSettings(top=1, seeds=1, by="val_acc", backend="ray",
                                                      ray={"cpus_per_trial": 1.0}), progress=False, figure=False,
                       log=print)
    assert conf.analysis.rows


class Broken(Evaluator):
    kind = "broken"
    uses_data = False

    def evaluate(self, spec, report=None, checkpoint=None):  # type: ignore[no-untyped-def]
        from nas_harness.errors import TrialError

        raise TrialError("this evaluator always fails")


register_evaluator("broken", lambda options, ctx: Broken())


@pytest.mark.ray
@pytest.mark.slow
def test_ray_stops_after_max_failures_like_the_local_loop(tmp_path: Path, ray_local: None) -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    d = tiny_dict(tmp_path, sampler={"kind": "random"}, evaluator={"kind": "broken"},
                  run={"n_trials": 40, "max_failures": 2, "backend": "ray"}, ray={"cpus_per_trial": 1.0})
    summary = run_search(validate(d))
    assert summary.stopped_by_failures and summary.n_complete == 0
    # no trial starts after the second failure; those Tune had already started or queued still end (failed);
    # before, every one of the 40 ran (and a study of n_trials = 20 whose trials all failed never ended)
    assert 2 <= summary.n_fail < 20
