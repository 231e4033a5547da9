"""Variants really change the network: SE modules and residual adds disappear, params/MACs drop, and
overrides in the arch grammar are validated before anything runs."""

from __future__ import annotations

import pytest
import torch

from nas_harness.ablation.variants import apply_variant, parse_variant_def, resolve_variants
from nas_harness.arch import parse_arch
from nas_harness.errors import ConfigError
from nas_harness.flops import count_macs, count_params
from nas_harness.model import MBConv, SqueezeExcitation, build_model
from nas_harness.presets import efficientnet_b0
from nas_harness.scaling import scale_arch

B0 = efficientnet_b0()
TINY = scale_arch(B0, width=0.25, depth=0.5)


def _n(model: torch.nn.Module, cls: type) -> int:
    return sum(isinstance(m, cls) for m in model.modules())


def test_builtin_variants_change_exactly_what_they_say() -> None:
    v = resolve_variants(B0, ["baseline", "no_se", "no_skip", "neither", "no_drop_path", "relu", "se_stages"])
    assert v["baseline"] == B0
    assert all(s.se is None and s.skip for s in v["no_se"].stages)
    assert all(s.se == 0.25 and not s.skip for s in v["no_skip"].stages)
    assert all(s.se is None and not s.skip for s in v["neither"].stages)
    assert v["no_drop_path"].drop_path == 0.0 and v["no_drop_path"].stages == B0.stages
    assert v["relu"].act == "relu" and str(v["relu"]).endswith("_relu")
    assert [s.se is not None for s in v["se_stages"].stages] == [False, False, False, True, True, True, True]
    # every variant is a valid arch string that round-trips
    for a in v.values():
        assert parse_arch(str(a)) == a


def test_no_se_removes_se_modules_params_and_macs() -> None:
    base, no_se = build_model(B0, num_classes=10), build_model(apply_variant(B0, "no_se"), num_classes=10)
    assert _n(base, SqueezeExcitation) == 16  # one per MBConv block in B0
    assert _n(no_se, SqueezeExcitation) == 0
    se_params = sum(p.numel() for m in base.modules() if isinstance(m, SqueezeExcitation) for p in m.parameters())
    n_base = sum(p.numel() for p in base.parameters())
    n_no_se = sum(p.numel() for p in no_se.parameters())
    assert n_base - n_no_se == se_params > 0
    # the analytic counters (what the ablation records) agree with the built models
    assert count_params(B0, 10) == n_base and count_params(apply_variant(B0, "no_se"), 10) == n_no_se
    assert count_macs(apply_variant(B0, "no_se"), 224).total < count_macs(B0, 224).total
    # removing skips changes no parameters and no counted MACs (the add is element-wise)
    assert count_params(apply_variant(B0, "no_skip"), 10) == n_base


def test_no_skip_removes_residual_adds() -> None:
    def res_blocks(arch) -> int:
        return sum(m.use_res_connect for m in build_model(arch, num_classes=10).modules() if isinstance(m, MBConv))

    assert res_blocks(B0) == 9  # B0: blocks with stride 1 and in == out
    assert res_blocks(apply_variant(B0, "no_skip")) == 0
    assert res_blocks(apply_variant(B0, "neither")) == 0
    assert res_blocks(apply_variant(B0, "no_se")) == 9


@pytest.mark.parametrize("variant", ["baseline", "no_skip", "neither"])
def test_forward_skip_block_returns_input_noskip_returns_zero(variant: str) -> None:
    """Zero the project BN (weight and bias): the residual branch outputs 0, so a block with the skip returns
    its input exactly and a block without it returns zeros."""
    torch.manual_seed(0)
    model = build_model(apply_variant(TINY, variant), num_classes=10).eval()
    block = model.features[4][1]  # stage 4 (ir_r2_k3_s2_e6_c24), second block: stride 1, 24 -> 24 channels
    assert isinstance(block, MBConv) and block.out_channels == 24
    project_bn = block.block[-1][1]
    assert isinstance(project_bn, torch.nn.BatchNorm2d)
    with torch.no_grad():
        project_bn.weight.zero_()
        project_bn.bias.zero_()
    x = torch.randn(2, 24, 8, 8)
    with torch.no_grad():
        y = block(x)
    if variant == "baseline":
        assert torch.equal(y, x)
    else:
        assert torch.count_nonzero(y) == 0


def test_same_init_seed_gives_same_weights_but_a_different_function() -> None:
    x = torch.randn(2, 3, 32, 32)
    outs, states = {}, {}
    for v in ("baseline", "no_skip"):
        torch.manual_seed(0)
        m = build_model(apply_variant(TINY, v), num_classes=10).eval()
        states[v] = m.state_dict()
        with torch.no_grad():
            outs[v] = m(x)
    # no_skip has exactly the same parameters and, with the same seed, the same initial weights ...
    assert states["baseline"].keys() == states["no_skip"].keys()
    assert all(torch.equal(states["baseline"][k], states["no_skip"][k]) for k in states["baseline"])
    # ... yet computes something else (relative difference, the untrained logits are tiny)
    a, b = outs["baseline"], outs["no_skip"]
    assert (a - b).abs().max() > 0.1 * a.abs().max()


def test_user_variant_overrides_and_whole_arch() -> None:
    defs = {
        "k5": parse_variant_def("k5", {"overrides": [{"stage": 3, "override": "k5_e4"}]}),
        "mix": parse_variant_def("mix", {"from": "no_se", "overrides": [{"stage": [1, 2], "override": "noskip"}],
                                         "act": "relu"}),
        "se_late": parse_variant_def("se_late", {"se_stages": [6, 7]}),
        "whole": parse_variant_def("whole", {"arch": str(TINY)}),
        "stage_tok": parse_variant_def("stage_tok", {"overrides": [{"stage": 1, "override": "ir_r2_k3_s1_e6_c16"}]}),
    }
    v = resolve_variants(B0, list(defs), defs)
    assert v["k5"].stages[2].kernel == 5 and v["k5"].stages[2].expand == 4
    assert v["k5"].stages[:2] == B0.stages[:2] and v["k5"].stages[3:] == B0.stages[3:]
    assert v["mix"].act == "relu" and all(s.se is None for s in v["mix"].stages)
    assert [s.skip for s in v["mix"].stages[:3]] == [False, False, True]
    assert [s.se is not None for s in v["se_late"].stages] == [False] * 5 + [True] * 2
    assert v["whole"] == TINY
    assert str(v["stage_tok"].stages[0]) == "ir_r2_k3_s1_e6_c16"


@pytest.mark.parametrize(
    ("definition", "needle"),
    [
        ({"overrides": [{"stage": 8, "override": "k5"}]}, "variant.bad.overrides[0].stage"),
        ({"overrides": [{"stage": 2, "override": "k4"}]}, "odd kernel"),
        ({"overrides": [{"stage": 2, "override": "k5_x3"}]}, "bad stage option 'x3'"),
        ({"overrides": [{"stage": 2, "override": "s3"}]}, "stride"),
        ({"overrides": [{"stage": 2}]}, "override: required key is missing"),
        ({"overrides": [{"stage": 0, "override": "k5"}]}, "stage[0] = 0 is invalid"),
        ({"se_stages": [9]}, "out of range"),
        ({"act": "tanh"}, "act"),
        ({"arch": "stem_c32_s2,head_c1"}, "variant.bad.arch"),
        ({"arch": "b0", "act": "relu"}, "cannot be combined"),
        ({"colour": "red"}, "variant.bad.colour: unknown key"),
        ({}, "defines nothing"),
        ({"from": "nope"}, "unknown variant 'nope'"),
    ],
)
def test_invalid_user_variants_are_one_line_config_errors(definition: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        d = parse_variant_def("bad", definition)
        resolve_variants(B0, ["bad"], {"bad": d})
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_unknown_variant_and_from_cycle() -> None:
    with pytest.raises(ConfigError, match=r"variants\[1\]: unknown variant 'no_ses'"):
        resolve_variants(B0, ["baseline", "no_ses"])
    defs = {"a": parse_variant_def("a", {"from": "b"}), "b": parse_variant_def("b", {"from": "a"})}
    with pytest.raises(ConfigError, match="cycle"):
        resolve_variants(B0, ["a"], defs)
    assert [s.se is not None for s in apply_variant(B0, "se_stages:2-3").stages][:4] == [False, True, True, False]
