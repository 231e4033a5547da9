"""The search space: B0 membership, define-by-run with stable names, sampling, and clear errors."""

import random

import optuna
import pytest

from nas_harness.errors import ConfigError
from nas_harness.presets import efficientnet_b0
from nas_harness.space import SearchSpace, StageChoices

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_b0_is_in_the_default_space():
    space = SearchSpace.default()
    assert efficientnet_b0() in space
    assert space.arch_from_params(space.params_of(efficientnet_b0())) == efficientnet_b0()
    assert efficientnet_b0().replace(head_channels=1536) not in space
    assert efficientnet_b0().replace_stages(stages=[3], kernel=9) not in space


def test_size_is_the_product_of_choices():
    space = SearchSpace.default()
    # kernels 3 x expands 4 x se 2 = 24 per stage, times repeats base±1 (stage 1 and 7: r=1 -> {1,2})
    repeats = [2, 3, 3, 3, 3, 3, 2]
    expected = 1
    for r in repeats:
        expected *= 24 * r
    assert space.size == expected
    tiny = SearchSpace.default(kernels=(3,), expands=(6,), se=(True,), repeats_delta=0)
    assert tiny.size == 1


def test_suggest_uses_stable_parameter_names_and_round_trips():
    space = SearchSpace.default(widths=(0.5, 1.0))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(space.params_of(efficientnet_b0()))
    archs = []
    for _ in range(20):
        trial = study.ask()
        archs.append(space.suggest(trial))
        study.tell(trial, 0.0)
    assert archs[0] == efficientnet_b0()
    names = set(study.trials[1].params)
    assert {"s1_kernel", "s3_kernel", "s7_expand", "s5_se", "s6_repeats", "s2_width"} <= names
    assert len(names) == 35
    for t, a in zip(study.trials, archs):
        assert a in space
        assert space.arch_from_params(t.params) == a
        assert space.params_of(a) == t.params


def test_sample_is_seeded_and_covers_choices():
    space = SearchSpace.default()
    assert space.sample(3) == space.sample(3)
    rng = random.Random(0)
    kernels = {space.sample(rng).stages[2].kernel for _ in range(200)}
    assert kernels == {3, 5, 7}
    assert all(space.sample(rng) in space for _ in range(50))


def test_from_dict_overrides_and_to_dict_round_trip():
    space = SearchSpace.from_dict({"kernels": [3, 5], "se": [True], "widths": [0.75, 1.0],
                                   "stages": {"3": {"kernels": [7], "repeats": [2, 3]}}})
    assert space.stages[0].kernels == (3, 5) and space.stages[2].kernels == (7,)
    assert space.stages[2].repeats == (2, 3)
    assert SearchSpace.from_dict(space.to_dict()) == space


@pytest.mark.parametrize("d, fragment", [
    ({"kernels": [3, 4]}, "space.kernels"),
    ({"expands": [0.5, 6]}, "space.expands"),
    ({"expands": []}, "non-empty"),
    ({"se": ["yes"]}, "space.se"),
    ({"widths": [0]}, "space.widths"),
    ({"kernel": [3]}, "space.kernel: unknown key"),
    ({"stages": {"8": {}}}, "space.stages.8"),
    ({"stages": {"2": {"repeats": [0]}}}, "space.stages.2.repeats"),
    ({"stages": {"2": {"kernel": [3]}}}, "space.stages.2.kernel: unknown key"),
    ({"repeats_delta": -1}, "repeats_delta"),
    ({"se_ratio": 2}, "se_ratio"),
    ({"kernels": 3}, "expected a list"),
])
def test_invalid_spaces_are_rejected(d, fragment):
    with pytest.raises(ConfigError) as err:
        SearchSpace.from_dict(d)
    assert fragment in str(err.value)


def test_stage_choices_validation_and_params_of_outside_space():
    with pytest.raises(ConfigError, match="duplicate"):
        StageChoices(kernels=(3, 3)).validate("x")
    with pytest.raises(ConfigError, match="stage 3 kernel 9"):
        SearchSpace.default().params_of(efficientnet_b0().replace_stages(stages=[3], kernel=9))
