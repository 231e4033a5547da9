"""The small-map depthwise path must give the native convolution's gradients and only engage where meant."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from nas_harness.arch import efficientnet_b0
from nas_harness.depthwise import DepthwiseConv2d, depthwise_weight_grad
from nas_harness.model import build_model, stock_layers
from nas_harness.scaling import scale_arch


def _pair(channels: int, kernel: int, stride: int, bias: bool) -> tuple[DepthwiseConv2d, nn.Conv2d]:
    torch.manual_seed(0)
    fast = DepthwiseConv2d(channels, kernel, stride, bias=bias)
    ref = nn.Conv2d(channels, channels, kernel, stride, (kernel - 1) // 2, groups=channels, bias=bias)
    ref.load_state_dict(fast.state_dict())
    return fast, ref


@pytest.mark.parametrize(("size", "kernel", "stride", "channels_last", "bias"), [
    (1, 3, 1, True, False), (1, 5, 2, False, True), (2, 3, 1, True, False), (2, 5, 1, False, False),
    (3, 5, 2, True, True), (4, 5, 1, True, False), (4, 5, 2, False, False), (4, 7, 1, True, True),
    ((2, 5), 7, 2, True, False), ((3, 1), 3, 1, False, True),
])
def test_gradients_match_native_conv(size, kernel, stride, channels_last, bias):
    h, w = (size, size) if isinstance(size, int) else size
    fast, ref = _pair(12, kernel, stride, bias)
    torch.manual_seed(1)
    x = torch.randn(6, 12, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        fast, ref = fast.to(memory_format=torch.channels_last), ref.to(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = fast(xa), ref(xb)
    assert "SmallMapDepthwise" in type(ya.grad_fn).__name__  # the fast path really ran
    g = torch.randn_like(yb)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(ya, yb, rtol=0, atol=0)  # forward is the native conv itself
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-4)
    if bias:
        torch.testing.assert_close(fast.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-4)


def test_weight_grad_is_exact_in_float64():
    torch.manual_seed(0)
    for h, k, s in itertools.product((1, 2, 3, 4), (3, 5), (1, 2)):
        x = torch.randn(5, 7, h, h, dtype=torch.float64)
        weight = torch.randn(7, 1, k, k, dtype=torch.float64)
        y = torch.nn.functional.conv2d(x, weight, None, s, k // 2, 1, 7)
        g = torch.randn_like(y)
        native = torch.ops.aten.convolution_backward(g, x, weight, None, [s, s], [k // 2, k // 2], [1, 1], False,
                                                     [0, 0], 7, [False, True, False])[1]
        ours = depthwise_weight_grad(x, g, (k, k), (s, s), (k // 2, k // 2))
        torch.testing.assert_close(ours, native, rtol=1e-12, atol=1e-12)


def test_native_path_where_the_fast_one_is_not_meant():
    conv = DepthwiseConv2d(8, 3)
    big = torch.randn(2, 8, 6, 6, requires_grad=True)
    small = torch.randn(2, 8, 2, 2, requires_grad=True)
    assert "SmallMap" not in type(conv(big).grad_fn).__name__  # map not smaller than the kernel
    k7 = DepthwiseConv2d(8, 7)
    assert "SmallMap" in type(k7(torch.randn(2, 8, 5, 5, requires_grad=True)).grad_fn).__name__
    assert "SmallMap" not in type(k7(torch.randn(2, 8, 6, 6, requires_grad=True)).grad_fn).__name__  # too many pairs
    with torch.no_grad():
        assert conv(small).grad_fn is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert "SmallMap" not in type(conv(small).grad_fn).__name__
    conv.weight.requires_grad_(False)
    assert "SmallMap" not in type(conv(small).grad_fn).__name__
    traced = torch.jit.trace(DepthwiseConv2d(8, 5), small)  # fvcore traces: it must see a plain conv
    assert "aten::_convolution" in str(traced.graph) and "PythonOp" not in str(traced.graph)


def test_model_uses_it_without_changing_layout_or_training_result():
    arch = scale_arch(efficientnet_b0(), width=0.25, depth=0.5)
    torch.manual_seed(0)
    model = build_model(arch, num_classes=10)
    dw = [m for m in model.modules() if isinstance(m, DepthwiseConv2d)]
    assert len(dw) == sum(s.repeats for s in arch.stages) and all(isinstance(m, nn.Conv2d) for m in dw)
    stock = stock_layers(build_model(arch, num_classes=10))
    assert not any(isinstance(m, DepthwiseConv2d) for m in stock.modules())
    from nas_harness.model import ConvBNAct, SqueezeExcitation

    # torchvision: in-place SiLU after conv+BN, out-of-place inside SE; ours: out of place everywhere
    assert all(m[-1].inplace for m in stock.modules() if isinstance(m, ConvBNAct) and isinstance(m[-1], nn.SiLU))
    assert not any(m.activation.inplace for m in stock.modules() if isinstance(m, SqueezeExcitation))
    assert not any(m.inplace for m in model.modules() if isinstance(m, nn.SiLU))
    stock.load_state_dict(model.state_dict())  # same keys and shapes
    x = torch.randn(4, 3, 32, 32)  # last stages run on 2x2 and 1x1 maps: the fast path engages
    y = torch.tensor([0, 1, 2, 3])
    for net in (model.eval(), stock.eval()):  # eval: no dropout / drop-path draws; gradients still flow
        torch.nn.functional.cross_entropy(net(x), y).backward()
    for (name, a), b in zip(model.named_parameters(), stock.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5, msg=name)
