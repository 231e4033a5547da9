"""The builder: exact B0 (count, layer order and shapes as torchvision), stock modules only, BN settings of
the arch (B5-B7), switchable blocks, compile."""

import importlib.util
import sys
import types

import pytest
import torch
from torch import nn

from nas_harness import model as model_module
from nas_harness.model import ConvBNAct, EfficientNet, MBConv, SqueezeExcitation, StochasticDepth, build_model
from nas_harness.presets import NAMED_VARIANTS, efficientnet, efficientnet_b0
from nas_harness.scaling import scale_arch

# torchvision efficientnet_b0, block by block: (input ch, expanded ch, output ch, kernel, SE squeeze ch),
# written out by hand from Table 1 of the paper (squeeze = input // 4).
B0_BLOCKS = {
    1: [(32, 32, 16, 3, 8)],
    2: [(16, 96, 24, 3, 4), (24, 144, 24, 3, 6)],
    3: [(24, 144, 40, 5, 6), (40, 240, 40, 5, 10)],
    4: [(40, 240, 80, 3, 10)] + [(80, 480, 80, 3, 20)] * 2,
    5: [(80, 480, 112, 5, 20)] + [(112, 672, 112, 5, 28)] * 2,
    6: [(112, 672, 192, 5, 28)] + [(192, 1152, 192, 5, 48)] * 3,
    7: [(192, 1152, 320, 3, 48)],
}


def torchvision_b0_shapes(num_classes=1000):
    """Parameter names and shapes of torchvision.models.efficientnet_b0(), in state-dict order."""
    out = [("features.0.0.weight", (32, 3, 3, 3)), ("features.0.1.weight", (32,)), ("features.0.1.bias", (32,))]

    def conv_bn(prefix, cout, cin_per_group, k):
        return [(f"{prefix}.0.weight", (cout, cin_per_group, k, k)), (f"{prefix}.1.weight", (cout,)),
                (f"{prefix}.1.bias", (cout,))]

    for stage, blocks in B0_BLOCKS.items():
        for b, (cin, mid, cout, k, sq) in enumerate(blocks):
            p = f"features.{stage}.{b}.block"
            i = 0
            if mid != cin:
                out += conv_bn(f"{p}.0", mid, cin, 1)
                i = 1
            out += conv_bn(f"{p}.{i}", mid, 1, k)
            out += [(f"{p}.{i + 1}.fc1.weight", (sq, mid, 1, 1)), (f"{p}.{i + 1}.fc1.bias", (sq,)),
                    (f"{p}.{i + 1}.fc2.weight", (mid, sq, 1, 1)), (f"{p}.{i + 1}.fc2.bias", (mid,))]
            out += conv_bn(f"{p}.{i + 2}", cout, mid, 1)
    out += conv_bn("features.8", 1280, 320, 1)
    out += [("classifier.1.weight", (num_classes, 1280)), ("classifier.1.bias", (num_classes,))]
    return out


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_b0_exact_parameter_count():
    assert n_params(build_model(efficientnet_b0())) == 5_288_548
    assert n_params(build_model(efficientnet_b0(), num_classes=10)) == 4_020_358


def test_b0_layer_order_and_shapes_match_torchvision():
    model = build_model(efficientnet_b0())
    ours = [(k, tuple(p.shape)) for k, p in model.named_parameters()]
    expected = torchvision_b0_shapes()
    assert len(ours) == len(expected) == 213
    assert ours == expected
    assert sum(torch.Size(s).numel() for _, s in expected) == 5_288_548
    # BN buffers sit where torchvision has them too: 49 BatchNorm layers x 3 buffers
    assert len(model.state_dict()) == 213 + 49 * 3


def test_weights_copied_in_order_give_same_outputs():
    """Copying a state dict across *by position* (as one would from torchvision) reproduces the outputs."""
    torch.manual_seed(0)
    src = build_model(efficientnet_b0(), num_classes=10).eval()
    torch.manual_seed(1)
    dst = build_model(efficientnet_b0(), num_classes=10).eval()
    x = torch.randn(2, 3, 64, 64)
    assert not torch.allclose(src(x), dst(x), rtol=1e-3, atol=0)
    with torch.no_grad():
        for a, b in zip(src.state_dict().values(), dst.state_dict().values(), strict=True):
            b.copy_(a)
    assert torch.equal(src(x), dst(x))


def _torchvision_models():
    """torchvision.models where it is installed (not a dependency).  Its model code is pure Python: a wheel
    whose compiled ops were built for another torch still gives the models, once the ops' meta
    registrations (which need those ops) are left out."""
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    try:
        import torchvision.models as tv
    except RuntimeError:  # its compiled ops do not load into this torch build
        for name in [k for k in sys.modules if k.split(".")[0] == "torchvision"]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision.models as tv
    return tv


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NAMED_VARIANTS))
def test_against_torchvision_when_installed(name):
    """torchvision's weights load into every variant key for key and give the same outputs (B5-B7 only with
    their BN eps 1e-3; with PyTorch's default they were 2-3e-4 apart)."""
    tv = _torchvision_models()
    ref = getattr(tv, f"efficientnet_{name}")().eval()
    with torch.no_grad():  # running statistics away from their defaults, so the BN eps matters
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 1.5)
                m.running_mean.uniform_(-0.1, 0.1)
    ours = build_model(efficientnet(name).arch).eval()
    assert [(k, v.shape) for k, v in ref.state_dict().items()] == [(k, v.shape) for k, v in ours.state_dict().items()]
    assert [(type(m).__name__, getattr(m, "eps", None), getattr(m, "momentum", None)) for m in ref.modules()
            if isinstance(m, nn.BatchNorm2d)] == [("BatchNorm2d", m.eps, m.momentum) for m in ours.modules()
                                                  if isinstance(m, nn.BatchNorm2d)]
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


# torchvision.models.efficientnet_b0..b7 build every BN with these (eps, momentum): B5-B7 pass
# norm_layer=partial(nn.BatchNorm2d, eps=0.001, momentum=0.01), B0-B4 take nn.BatchNorm2d's defaults.
TORCHVISION_BN = {**dict.fromkeys(["b0", "b1", "b2", "b3", "b4"], (1e-5, 0.1)),
                  **dict.fromkeys(["b5", "b6", "b7"], (1e-3, 0.01))}


@pytest.mark.parametrize("name", list(NAMED_VARIANTS))
def test_every_bn_layer_has_the_variants_eps_and_momentum(name):
    arch = efficientnet(name).arch
    assert (arch.bn_eps, arch.bn_momentum) == TORCHVISION_BN[name]
    # (a shallow copy builds quickly and has the same BN layers, one per conv)
    model = build_model(scale_arch(arch, depth=0.1) if name != "b0" else arch)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and {(m.eps, m.momentum) for m in bns} == {TORCHVISION_BN[name]}


def test_build_model_is_made_of_stock_modules_only():
    """No kernel code in the built model: torch.nn classes, plus this module's plain containers and blocks
    (their forwards are the stock ops), torchvision's layout (in-place SiLU, Conv2d depthwise layers)."""
    model = build_model(efficientnet_b0().replace_stages(stages=[2], skip=False))
    ours = {EfficientNet, ConvBNAct, MBConv, SqueezeExcitation, StochasticDepth}
    for m in model.modules():
        assert type(m) in ours or type(m).__module__.startswith("torch.nn."), type(m)
    assert not [n for n in vars(model_module) if "kernel" in n.lower() or "fused" in n.lower()]
    assert ConvBNAct.forward is nn.Sequential.forward  # no forward of its own
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.SiLU))
    depthwise = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 16 and all(type(m) is nn.Conv2d for m in depthwise)


def test_se_and_skip_are_switchable():
    b0 = efficientnet_b0()
    full = build_model(b0)
    no_se = build_model(b0.replace_stages(se=None))
    no_skip = build_model(b0.replace_stages(skip=False))
    count_se = lambda m: sum(isinstance(x, SqueezeExcitation) for x in m.modules())  # noqa: E731
    residual = lambda m: sum(x.use_res_connect for x in m.modules() if isinstance(x, MBConv))  # noqa: E731
    assert count_se(full) == 16 and count_se(no_se) == 0
    assert residual(full) == 9 and residual(no_skip) == 0
    assert n_params(no_skip) == n_params(full)
    assert n_params(no_se) < n_params(full)


def test_stochastic_depth_schedule_is_linear_in_block_index():
    model = build_model(efficientnet_b0())
    probs = [m.stochastic_depth.p for m in model.modules() if isinstance(m, MBConv)]
    assert probs == pytest.approx([0.2 * i / 16 for i in range(16)])


def test_proxy_stem_stride_and_in_channels():
    arch = scale_arch(efficientnet_b0(), width=0.25, depth=0.5)
    m = build_model(arch, num_classes=10, in_channels=1, stem_stride=1).eval()
    assert m.features[0][0].stride == (1, 1)
    assert m(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert build_model(arch).features[0][0].stride == (2, 2)


def test_channels_last_matches_contiguous():
    arch = scale_arch(efficientnet_b0(), width=0.25, depth=0.5)
    m = build_model(arch, num_classes=10, stem_stride=1).eval()
    x = torch.randn(4, 3, 16, 16)
    ref = m(x)
    m_cl = m.to(memory_format=torch.channels_last)
    torch.testing.assert_close(m_cl(x.to(memory_format=torch.channels_last)), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_torch_compile_trains_like_eager():
    """Dynamo must capture the model without graph breaks that change results (forward + backward).

    aot_eager exercises tracing and autograd of the captured graph without inductor's C++ codegen, which
    takes minutes on a 2-core CI machine; the GPU check runs the default backend.
    """
    torch.manual_seed(0)
    arch = scale_arch(efficientnet_b0(), width=0.25, depth=0.5).replace(drop_path=0.0, dropout=0.0)
    m = build_model(arch, num_classes=10, stem_stride=1).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 16, 16).to(memory_format=torch.channels_last)
    eager = m(x)
    compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
    out = compiled(x)
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-5)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
