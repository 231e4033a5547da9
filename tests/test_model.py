"""The builder: exact B0 (count, layer order and shapes as torchvision), switchable blocks, compile."""

import pytest
import torch

from nas_harness.arch import efficientnet_b0
from nas_harness.model import MBConv, SqueezeExcitation, build_model
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


def test_against_torchvision_when_installed():
    tv = pytest.importorskip("torchvision.models")
    ref = tv.efficientnet_b0().eval()
    ours = build_model(efficientnet_b0()).eval()
    assert [(k, v.shape) for k, v in ref.state_dict().items()] == [(k, v.shape) for k, v in ours.state_dict().items()]
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(ours(x), ref(x))


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
