"""Samplers, pruners and reference archs (projection onto the space, enqueue tagging)."""

from __future__ import annotations

import optuna
import pytest

from nas_harness.arch import efficientnet_b0
from nas_harness.errors import ConfigError
from nas_harness.objectives import Objective
from nas_harness.scaling import scale_arch
from nas_harness.space import SearchSpace
from nas_harness.study.samplers import make_pruner, make_sampler, project_params, reference_arch
from nas_harness.study.search import enqueue_references

SAMPLER_CFG = {"kind": "tpe", "n_startup_trials": 2, "population_size": 4, "max_grid_size": 64, "enqueue": []}


def _small_space() -> SearchSpace:
    base = scale_arch(efficientnet_b0(), width=0.25, depth=0.5)
    return SearchSpace.from_dict({"kernels": [3], "expands": [6], "se": [True], "repeats_delta": 0,
                                  "stages": {"3": {"kernels": [3, 5]}, "4": {"expands": [1, 6]},
                                             "5": {"se": [True, False]}}}, base)


@pytest.mark.parametrize(("kind", "cls"), [("tpe", optuna.samplers.TPESampler),
                                           ("nsgaii", optuna.samplers.NSGAIISampler),
                                           ("random", optuna.samplers.RandomSampler)])
def test_make_sampler_kinds_are_seeded(kind: str, cls: type) -> None:
    space = SearchSpace.default()
    archs = []
    for _ in range(2):
        s = make_sampler(dict(SAMPLER_CFG, kind=kind), Objective(kind="reward"), seed=3, space=space)
        assert isinstance(s, cls)
        study = optuna.create_study(sampler=s, direction="maximize")
        t = study.ask()
        archs.append(str(space.suggest(t)))
    assert archs[0] == archs[1]  # the seed fixes sampling


def test_grid_sampler_covers_small_space_exactly_once() -> None:
    space = _small_space()
    n = space.size
    assert n <= 64
    s = make_sampler(dict(SAMPLER_CFG, kind="grid"), None, seed=0, space=space)
    study = optuna.create_study(sampler=s)
    seen = []

    def obj(trial: optuna.Trial) -> float:
        seen.append(str(space.suggest(trial)))
        return 0.0

    study.optimize(obj, n_trials=n + 5)  # the grid sampler stops the study when exhausted
    assert len(seen) == n == len(set(seen))


def test_grid_sampler_refuses_big_space() -> None:
    with pytest.raises(ConfigError, match=r"sampler\.max_grid_size"):
        make_sampler(dict(SAMPLER_CFG, kind="grid"), None, seed=0, space=SearchSpace.default())


def test_pruners() -> None:
    base = {"kind": "none", "warmup_epochs": 1, "startup_trials": 2, "min_epochs": 1, "reduction_factor": 3}
    assert isinstance(make_pruner(base), optuna.pruners.NopPruner)
    assert isinstance(make_pruner(dict(base, kind="median")), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner(dict(base, kind="sha")), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner(dict(base, kind="hyperband")), optuna.pruners.HyperbandPruner)


def test_reference_archs_and_projection() -> None:
    b0 = efficientnet_b0()
    space = SearchSpace.default()
    assert project_params(space, b0) == space.params_of(b0)  # B0 is in the default space: exact
    nose = space.arch_from_params(project_params(space, reference_arch("b0-nose", b0)))
    assert all(st.se is None for st in nose.stages)
    k3 = space.arch_from_params(project_params(space, reference_arch("b0-k3", b0)))
    assert {st.kernel for st in k3.stages} == {3}
    shallow = space.arch_from_params(project_params(space, reference_arch("b0-d0.5", b0)))
    assert shallow.num_blocks < b0.num_blocks
    # a space that lacks B0's choices: each one snapped to the nearest allowed value
    small = _small_space()
    p = project_params(small, b0)
    assert p["s3_kernel"] == 5 and p["s4_expand"] == 6 and p["s5_se"] is True
    assert p["s1_expand"] == 6 and p["s5_kernel"] == 3  # B0's expand 1 / kernel 5 are not offered there
    assert small.arch_from_params(p) in small
    with pytest.raises(ConfigError, match=r"sampler\.enqueue"):
        reference_arch("b0-x9", b0)


def test_enqueue_references_tags_and_skips_seen() -> None:
    space = _small_space()
    study = optuna.create_study(direction="maximize")
    assert enqueue_references(study, space, ["base", "b0-nose"]) == ["base", "b0-nose"]
    assert enqueue_references(study, space, ["base", "b0-nose"]) == []  # already queued: not twice
    t = study.ask()
    assert t.user_attrs["reference"] == "base"
    assert space.suggest(t) == space.arch_from_params(project_params(space, space.base))
