"""Samplers, pruners and reference archs (projection onto the space, enqueue tagging)."""

from __future__ import annotations

import optuna
import pytest

from nas_harness.errors import ConfigError
from nas_harness.objectives import Objective
from nas_harness.presets import efficientnet_b0
from nas_harness.scaling import scale_arch
from nas_harness.space import SearchSpace
from nas_harness.study.config import PrunerConfig, SamplerConfig, validate
from nas_harness.study.samplers import make_pruner, make_sampler, project_params, reference_arch
from nas_harness.study.search import enqueue_references, grid_candidates


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
        s = make_sampler(SamplerConfig(kind=kind), Objective(kind="reward"), seed=3, space=space)
        assert isinstance(s, cls)
        study = optuna.create_study(sampler=s, direction="maximize")
        t = study.ask()
        archs.append(str(space.suggest(t)))
    assert archs[0] == archs[1]  # the seed fixes sampling


def test_grid_covers_small_space_exactly_once_in_a_seeded_order() -> None:
    space = _small_space()
    grid = grid_candidates(space, seed=0)
    archs = [str(space.arch_from_params(p)) for p in grid]
    assert len(archs) == space.size == len(set(archs))
    assert grid == grid_candidates(space, seed=0) and grid != grid_candidates(space, seed=1)


def test_grid_sampler_refuses_big_space() -> None:
    with pytest.raises(ConfigError, match=r"^sampler\.kind: 'grid' over .* exceeds sampler\.max_grid_size=64"):
        validate({"name": "g", "data": {"dataset": "synthetic"}, "sampler": {"kind": "grid", "max_grid_size": 64}})


def test_pruners() -> None:
    assert isinstance(make_pruner(PrunerConfig()), optuna.pruners.NopPruner)
    assert isinstance(make_pruner(PrunerConfig(kind="median", startup_trials=2)), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner(PrunerConfig(kind="sha")), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner(PrunerConfig(kind="hyperband")), optuna.pruners.HyperbandPruner)


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
