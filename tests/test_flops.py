"""MAC counting: fvcore's own numbers are the reference; the analytic counter must agree exactly."""

import random

import pytest

from nas_harness.flops import count_macs, count_params, fvcore_macs, stage_table
from nas_harness.model import build_model
from nas_harness.presets import NAMED_VARIANTS, efficientnet, efficientnet_b0
from nas_harness.scaling import scale_arch
from nas_harness.space import SearchSpace


def test_b0_at_224_matches_published_fvcore_figures():
    model = build_model(efficientnet_b0())
    f = fvcore_macs(model, 224)
    assert f.total == 401_659_392
    assert f.by_op["conv"] + f.by_op["linear"] == 385_814_752
    assert set(f.by_op) == {"conv", "batch_norm", "adaptive_avg_pool2d", "linear"}
    a = count_macs(efficientnet_b0(), 224)
    assert a.total == f.total and a.by_op == f.by_op
    assert a.conv_linear == 385_814_752
    assert model.training  # fvcore_macs restores the mode


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NAMED_VARIANTS))
def test_analytic_equals_fvcore_on_b0_to_b7(name):
    v = efficientnet(name)
    model = build_model(v.arch)
    f = fvcore_macs(model, v.resolution)
    a = count_macs(v.arch, v.resolution)
    assert (a.total, a.by_op) == (f.total, f.by_op)
    assert count_params(v.arch) == sum(p.numel() for p in model.parameters())


@pytest.mark.slow
def test_analytic_equals_fvcore_on_random_archs():
    """Property test over the search space: random members, odd and even resolutions, class counts,
    in-channels and stem strides (shallow and narrow so fvcore's tracing stays quick)."""
    rng = random.Random(1234)
    space = SearchSpace.default(widths=(0.25, 0.5), expands=(1, 2.5, 3, 4, 6))
    for i in range(60):
        arch = scale_arch(space.sample(rng), depth=0.34)
        if i % 4 == 0:
            arch = arch.replace_stages(stages=[rng.randint(1, 7)], skip=False, se=None)
        res = rng.choice([17, 28, 32, 45, 64])
        kw = dict(num_classes=rng.choice([1, 10, 100]), in_channels=rng.choice([1, 3]))
        stem_stride = rng.choice([None, 1])
        model = build_model(arch, stem_stride=stem_stride, **kw)
        f = fvcore_macs(model, res, in_channels=kw["in_channels"])
        a = count_macs(arch, res, stem_stride=stem_stride, **kw)
        assert (a.total, a.by_op) == (f.total, f.by_op), (str(arch), res, kw, stem_stride)
        assert count_params(arch, **kw) == sum(p.numel() for p in model.parameters())


def test_fvcore_sees_the_stock_ops_of_an_accelerated_model_too():
    from nas_harness import kernels

    arch = scale_arch(efficientnet_b0(), width=0.5, depth=0.34)
    model = kernels.accelerate(build_model(arch, num_classes=10, stem_stride=1))
    f = fvcore_macs(model, 32)
    a = count_macs(arch, 32, num_classes=10, stem_stride=1)
    assert (a.total, a.by_op) == (f.total, f.by_op)


def test_stage_table_sums_to_totals():
    rows = stage_table(efficientnet_b0(), 224)
    assert [r.name for r in rows] == ["stem"] + [f"stage {i}" for i in range(1, 8)] + ["head"]
    assert sum(r.macs for r in rows) == 401_659_392
    assert sum(r.params for r in rows) == 5_288_548
    assert rows[-2].hw == (7, 7)


def test_removing_se_removes_macs_and_params_and_elementwise_extras_are_separate():
    b0 = efficientnet_b0()
    full, no_se = count_macs(b0), count_macs(b0.replace_stages(se=None))
    assert no_se.total < full.total and no_se.elementwise["se_scale"] == 0
    assert count_params(b0.replace_stages(se=None)) < count_params(b0)
    no_skip = count_macs(b0.replace_stages(skip=False))
    assert no_skip.total == full.total and no_skip.elementwise["residual_add"] == 0
    assert full.elementwise["residual_add"] > 0


def test_proxy_stem_stride_quadruples_spatial_macs():
    arch = scale_arch(efficientnet_b0(), width=0.5)
    s2 = count_macs(arch, 32, num_classes=10)
    s1 = count_macs(arch, 32, num_classes=10, stem_stride=1)
    assert s1.by_op["conv"] > 3 * s2.by_op["conv"]


def test_fvcore_memory_bound_admits_every_named_variant_at_its_own_resolution_and_refuses_huge_inputs() -> None:
    """Issue #21: ``info --fvcore`` is refused (one line) when the trace would exceed FVCORE_MAX_BYTES."""
    from nas_harness.flops import FVCORE_MAX_BYTES, trace_bytes
    from nas_harness.presets import NAMED_VARIANTS, resolve_arch

    for key, variant in NAMED_VARIANTS.items():
        assert trace_bytes(resolve_arch(key), variant[2]) < FVCORE_MAX_BYTES, key
    assert trace_bytes(resolve_arch("b0"), 16384) > 50 * FVCORE_MAX_BYTES
    assert 3.5 < trace_bytes(resolve_arch("b0"), 448) / trace_bytes(resolve_arch("b0"), 224) < 4.5  # ~ pixels
