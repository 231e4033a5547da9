"""Compound scaling: the official variants must have the reference implementation's exact counts."""

import pytest

from nas_harness.arch import make_divisible
from nas_harness.errors import ConfigError
from nas_harness.flops import count_params
from nas_harness.model import build_model
from nas_harness.presets import efficientnet, efficientnet_b0
from nas_harness.scaling import compound, scale_arch
from nas_harness.space import SearchSpace

# Exact counts of the reference implementation (torchvision's efficientnet_b0..b7 model cards) and the
# rounded figures of the paper's Table 2.
REFERENCE = {"b0": 5_288_548, "b1": 7_794_184, "b2": 9_109_994, "b3": 12_233_232, "b4": 19_341_616,
             "b5": 30_389_784, "b6": 43_040_704, "b7": 66_347_960}
PAPER_M = {"b0": 5.3, "b1": 7.8, "b2": 9.2, "b3": 12, "b4": 19, "b5": 30, "b6": 43, "b7": 66}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_named_variants_exact_parameter_counts(name):
    v = efficientnet(name)
    assert count_params(v.arch) == REFERENCE[name]
    assert count_params(v.arch) / 1e6 == pytest.approx(PAPER_M[name], rel=0.02)


def test_built_b3_has_the_counted_parameters():
    v = efficientnet("b3")
    assert sum(p.numel() for p in build_model(v.arch).parameters()) == REFERENCE["b3"]


def test_named_variant_settings():
    b7 = efficientnet("b7")
    assert (b7.resolution, b7.arch.dropout, b7.arch.stem_channels, b7.arch.head_channels) == (600, 0.5, 64, 2560)
    assert [s.repeats for s in b7.arch.stages] == [4, 7, 7, 10, 10, 13, 4]
    assert (b7.arch.bn_eps, b7.arch.bn_momentum) == (1e-3, 0.01)  # torchvision's B5-B7
    assert efficientnet("b0").arch == efficientnet_b0()


@pytest.mark.parametrize("value, expected", [(32, 32), (35.2, 32), (36, 40), (17.6, 16), (3, 8), (44.8, 48),
                                             (1.1 * 1280, 1408), (12, 16), (7, 8)])
def test_make_divisible_ten_percent_rule(value, expected):
    assert make_divisible(value) == expected


def test_compound_phi():
    b0 = efficientnet_b0()
    assert compound(b0, 0).arch == b0 and compound(b0, 0).resolution == 224
    s1 = compound(b0, 1)
    assert s1.depth == pytest.approx(1.2) and s1.width == pytest.approx(1.1) and s1.resolution == 258
    assert [s.repeats for s in s1.arch.stages] == [2, 3, 3, 4, 4, 5, 2]
    s2 = compound(b0, 2, alpha=1.0, beta=1.0, gamma=1.0)
    assert s2.arch == b0 and s2.resolution == 224
    with pytest.raises(ConfigError, match="alpha"):
        compound(b0, 1, alpha=0.5)
    with pytest.raises(ConfigError, match="phi"):
        compound(b0, -1)


def test_scaling_a_searched_arch():
    arch = SearchSpace.default().sample(7)
    s = compound(arch, 1)
    assert [a.kernel for a in s.arch.stages] == [a.kernel for a in arch.stages]
    assert all(b.channels >= a.channels and b.repeats >= a.repeats for a, b in zip(arch.stages, s.arch.stages))
    assert count_params(s.arch) > count_params(arch)
    assert scale_arch(arch) == arch
    tf = arch.replace(bn_eps=1e-3, bn_momentum=0.01)
    assert (compound(tf, 2).arch.bn_eps, compound(tf, 2).arch.bn_momentum) == (1e-3, 0.01)  # scaling keeps BN
