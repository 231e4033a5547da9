"""The depthwise weight-gradient paths (C kernel, tap matrix) must give oneDNN's gradients and engage only
where meant."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

from nas_harness import kernels
from nas_harness.kernels._depthwise import DepthwiseConv2d, depthwise_weight_grad
from nas_harness.model import ConvBNAct, SqueezeExcitation, build_model
from nas_harness.presets import efficientnet_b0
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
def test_gradients_match_native_conv(size, kernel, stride, channels_last, bias, request):
    h, w = (size, size) if isinstance(size, int) else size
    fast, ref = _pair(12, kernel, stride, bias)
    torch.manual_seed(1)
    x = torch.randn(6, 12, h, w)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        fast, ref = fast.to(memory_format=torch.channels_last), ref.to(memory_format=torch.channels_last)
    if x.is_contiguous(memory_format=torch.channels_last):  # takes the C kernel
        request.getfixturevalue("native")
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = fast(xa), ref(xb)
    assert "DepthwiseWeightGrad" in type(ya.grad_fn).__name__  # a custom path really ran
    # (a 1x1 map is channels_last-contiguous in either layout)
    assert fast._weight_grad_path(x) == ("native" if x.is_contiguous(memory_format=torch.channels_last) else "pairs")
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


@pytest.mark.parametrize(("channels", "size", "kernel", "stride"), [
    (48, 32, 3, 2), (96, 16, 3, 1), (96, 16, 5, 2), (144, 8, 5, 1), (40, 7, 5, 2), (33, 9, 3, 1), (64, 1, 3, 1),
    (240, 4, 5, 1), (8, 2, 5, 1),  # kernel larger than the map: the C kernel even below 32 channels
])
def test_c_kernel_gradients_match_onednn_on_model_shapes(channels, size, kernel, stride, native):
    fast, ref = _pair(channels, kernel, stride, bias=False)
    fast, ref = fast.to(memory_format=torch.channels_last), ref.to(memory_format=torch.channels_last)
    torch.manual_seed(2)
    x = torch.randn(10, channels, size, size).contiguous(memory_format=torch.channels_last)
    assert fast._weight_grad_path(x) == "native"
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = fast(xa), ref(xb)
    g = torch.randn_like(yb)
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=0, atol=0)  # the input gradient is oneDNN's own
    scale = ref.weight.grad.abs().max()
    torch.testing.assert_close(fast.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-5 * float(scale))


def test_oneDNN_path_where_the_custom_ones_are_not_meant(monkeypatch, native):
    conv = DepthwiseConv2d(8, 3)
    big = torch.randn(2, 8, 6, 6, requires_grad=True)
    small = torch.randn(2, 8, 2, 2, requires_grad=True)
    assert conv._weight_grad_path(big) is None  # NCHW, map not smaller than the kernel
    assert conv._weight_grad_path(big.contiguous(memory_format=torch.channels_last)) is None  # < 32 channels
    wide = DepthwiseConv2d(32, 3)
    assert wide._weight_grad_path(torch.randn(2, 32, 6, 6).contiguous(memory_format=torch.channels_last)) == "native"
    k7 = DepthwiseConv2d(8, 7)
    assert "DepthwiseWeightGrad" in type(k7(torch.randn(2, 8, 5, 5, requires_grad=True)).grad_fn).__name__
    assert k7._weight_grad_path(torch.randn(2, 8, 6, 6)) is None  # too many pairs
    with torch.no_grad():
        assert conv(small).grad_fn is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert "DepthwiseWeightGrad" not in type(conv(small).grad_fn).__name__
    traced = torch.jit.trace(DepthwiseConv2d(8, 5), small)  # fvcore traces: it must see a plain conv
    assert "aten::_convolution" in str(traced.graph) and "PythonOp" not in str(traced.graph)
    conv.weight.requires_grad_(False)
    assert "DepthwiseWeightGrad" not in type(conv(small).grad_fn).__name__
    # Without the compiled kernels (no compiler, or NAS_HARNESS_NATIVE=0) the tap matrix still serves tiny maps.
    monkeypatch.setenv(kernels.ENV_VAR, "0")
    assert wide._weight_grad_path(torch.randn(2, 32, 6, 6).contiguous(memory_format=torch.channels_last)) is None
    assert k7._weight_grad_path(torch.randn(2, 8, 5, 5).contiguous(memory_format=torch.channels_last)) == "pairs"


def test_accelerated_model_uses_it_without_changing_layout_or_training_result():
    arch = scale_arch(efficientnet_b0(), width=0.25, depth=0.5)
    torch.manual_seed(0)
    stock = build_model(arch, num_classes=10)
    assert not any(isinstance(m, DepthwiseConv2d) for m in stock.modules())
    model = kernels.accelerate(copy.deepcopy(stock))
    dw = [m for m in model.modules() if isinstance(m, DepthwiseConv2d)]
    assert len(dw) == sum(s.repeats for s in arch.stages) and all(isinstance(m, nn.Conv2d) for m in dw)
    # torchvision: conv+BN+act blocks are Sequentials with in-place SiLU, in place inside SE as well;
    # accelerated: the same modules, with fast classes and out-of-place SiLU
    blocks = [m for m in stock.modules() if type(m) is ConvBNAct]
    assert blocks and all(m[2].inplace for m in blocks if len(m) > 2)
    assert all(m.activation.inplace for m in stock.modules() if isinstance(m, SqueezeExcitation))
    assert not any(type(m) is nn.SiLU for m in model.modules())
    stock.load_state_dict(model.state_dict())  # same keys and shapes
    x = torch.randn(4, 3, 32, 32)  # last stages run on 2x2 and 1x1 maps: the fast path engages
    y = torch.tensor([0, 1, 2, 3])
    for net in (model.eval(), stock.eval()):  # eval: no dropout / drop-path draws; gradients still flow
        torch.nn.functional.cross_entropy(net(x), y).backward()
    for (name, a), b in zip(model.named_parameters(), stock.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5, msg=name)
