"""The fused BN+activation and SE paths must compute what the stock modules compute, and engage only where meant."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas_harness import kernels
from nas_harness.kernels._fused import OutOfPlaceSiLU, bn_act, bn_act_fusable
from nas_harness.kernels._transform import FusedSqueezeExcitation
from nas_harness.model import SqueezeExcitation, build_model
from nas_harness.presets import efficientnet_b0
from nas_harness.scaling import scale_arch

CL = torch.channels_last
pytestmark = pytest.mark.usefixtures("native")  # every test here exercises the compiled kernels


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=CL)


def _bn_pair(c: int, momentum: float | None = 0.1) -> tuple[nn.BatchNorm2d, nn.BatchNorm2d]:
    bn = nn.BatchNorm2d(c, momentum=momentum)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    return bn, copy.deepcopy(bn)


def _graph_nodes(t: torch.Tensor) -> set[str]:
    """Names of every autograd node behind ``t``."""
    seen, stack, names = set(), [t.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return names


@pytest.mark.parametrize("act", [None, nn.SiLU(), OutOfPlaceSiLU(inplace=True), nn.ReLU(), nn.Hardswish()],
                         ids=["none", "silu", "silu-out-of-place", "relu", "hswish"])
@pytest.mark.parametrize(("shape", "momentum", "offset"), [
    ((8, 24, 9, 9), 0.1, 0.0),      # rows not a multiple of the kernel's run length
    ((32, 16, 16, 16), 0.01, 3.0),  # narrow channels, many rows, both threads
    ((16, 13, 2, 2), None, 0.0),    # odd channel count, cumulative average
    ((4, 320, 1, 1), 0.1, -2.0),    # 1x1 map: one row per sample
])
def test_bn_act_matches_stock_in_training(act, shape, momentum, offset):
    torch.manual_seed(0)
    bn, ref = _bn_pair(shape[1], momentum)
    x = _cl(torch.randn(*shape) * 2 + offset)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    assert bn_act_fusable(xa, bn, act)
    ya = bn_act(xa, bn, act)
    yb = ref(xb) if act is None else act(ref(xb))
    assert "_BNActTrainBackward" in type(ya.grad_fn).__name__ and ya.is_contiguous(memory_format=CL)
    g = _cl(torch.randn(*shape))
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bn.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(bn.running_mean, ref.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var, ref.running_var, rtol=1e-5, atol=1e-6)
    assert int(bn.num_batches_tracked) == int(ref.num_batches_tracked) == 1


@pytest.mark.parametrize("act", [nn.SiLU(), None], ids=["silu", "none"])
def test_bn_act_eval_and_no_grad_recalibration_match_stock(act):
    torch.manual_seed(1)
    bn, ref = _bn_pair(40, momentum=None)  # momentum None: what BN recalibration uses
    stock = (lambda t: ref(t)) if act is None else (lambda t: act(ref(t)))
    with torch.no_grad():
        for _ in range(3):  # train mode without a graph: statistics only, cumulative average
            x = _cl(torch.randn(6, 40, 5, 5) + 1)
            torch.testing.assert_close(bn_act(x, bn, act), stock(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn.running_mean, ref.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var, ref.running_var, rtol=1e-5, atol=1e-6)
    bn.eval()
    ref.eval()
    x = _cl(torch.randn(6, 40, 5, 5))
    with torch.inference_mode():
        torch.testing.assert_close(bn_act(x, bn, act), stock(x), rtol=1e-5, atol=1e-5)
    assert not bn_act_fusable(x.requires_grad_(), bn, act)  # gradients through eval-mode BN: stock ops


def test_bn_statistics_stay_exact_under_a_large_mean():
    # Single-pass variance with a shift: a mean 10^4 standard deviations away must not cancel.
    torch.manual_seed(2)
    x = _cl(torch.randn(64, 8, 6, 6) * 0.01 + 100.0)
    bn = nn.BatchNorm2d(8, momentum=1.0)
    with torch.no_grad():
        bn_act(x, bn, None)
    x64 = x.double()
    torch.testing.assert_close(bn.running_mean.double(), x64.mean((0, 2, 3)), rtol=1e-6, atol=0)
    torch.testing.assert_close(bn.running_var.double(), x64.var((0, 2, 3), unbiased=True), rtol=1e-3, atol=0)


def test_silu_is_exact_on_large_activations():
    """The sigmoid's reciprocal rounds correctly: SiLU of a large input is the input itself, and its gradient
    is 1, as in float64 (before: one ulp low, and a gradient error growing like y * 6e-8)."""
    y = torch.tensor([17.0, 20.0, 50.0, 300.0, 3000.0, 1.0e6]).view(1, 6, 1, 1).repeat(4, 1, 1, 1)
    y = _cl(y + torch.tensor([0.0, 1.0, 2.0, 3.0]).view(4, 1, 1, 1))
    bn = nn.BatchNorm2d(6, eps=0.0).eval()  # identity: running mean 0, variance 1
    with torch.inference_mode():
        out = bn_act(y, bn, nn.SiLU())
    ref = (y.double() * torch.sigmoid(y.double())).float()
    assert torch.equal(out, ref)
    # Gradient: BN scale and shift put every activation in [1e3, 1e4], where silu' is 1 to float precision; the
    # shift's gradient is then sum(g), which the old kernel overestimated by y * 6e-8 relative (about 2e-4).
    torch.manual_seed(5)
    bn = nn.BatchNorm2d(6)
    with torch.no_grad():
        bn.weight.fill_(1000.0)
        bn.bias.fill_(6000.0)
    g = _cl(torch.rand(64, 6, 5, 5) + 0.5)
    bn_act(_cl(torch.randn(64, 6, 5, 5)).requires_grad_(), bn, nn.SiLU()).backward(g)
    torch.testing.assert_close(bn.bias.grad.double(), g.double().sum((0, 2, 3)), rtol=2e-6, atol=0)


def test_non_finite_values_propagate():
    bn = nn.BatchNorm2d(4)
    x = _cl(torch.randn(2, 4, 3, 3))
    x[1, 2, 0, 0] = float("nan")
    y = bn_act(x.requires_grad_(), bn, nn.SiLU())
    assert torch.isnan(y[:, 2]).all() and torch.isfinite(y[:, [0, 1, 3]]).all()


@pytest.mark.parametrize("act", [nn.SiLU, nn.ReLU, nn.Hardswish, nn.GELU])
def test_se_gate_matches_stock(act):
    torch.manual_seed(3)
    ref = SqueezeExcitation(48, 12, act_layer=lambda: act(inplace=True) if act is not nn.GELU else act())
    se = kernels.accelerate(nn.Sequential(copy.deepcopy(ref)))[0]
    assert type(se) is FusedSqueezeExcitation
    x = _cl(torch.randn(8, 48, 7, 7))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = se(xa), ref(xb)
    assert "_SEGateBackward" in type(ya.grad_fn).__name__ and "_SEGate" not in type(yb.grad_fn).__name__
    g = _cl(torch.randn_like(x))
    ya.backward(g)
    yb.backward(g)
    torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-6)
    for (name, a), b in zip(se.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)
    se.fc1.weight.requires_grad_(False)  # frozen parameters get no gradient, the rest still do
    se.zero_grad(set_to_none=True)
    se(x.clone().requires_grad_()).backward(g)
    assert se.fc1.weight.grad is None and se.fc2.weight.grad is not None


def test_model_training_step_matches_stock():
    arch = scale_arch(efficientnet_b0(), width=0.5, depth=0.5)
    torch.manual_seed(4)
    stock = build_model(arch, num_classes=10, stem_stride=1).to(memory_format=CL)
    for m in stock.modules():  # no random draws, so both models compute the same function
        if hasattr(m, "p"):
            m.p = 0.0
    model = kernels.accelerate(copy.deepcopy(stock))
    x, y = _cl(torch.randn(12, 3, 32, 32)), torch.arange(12) % 10
    la = F.cross_entropy(model(x), y)
    lb = F.cross_entropy(stock(x), y)
    # (MmBackward0: 1x1 convolutions on the 4x4 and 2x2 maps run as matmuls)
    fused_nodes = {"_BNActTrainBackward", "_SEGateBackward", "_DepthwiseWeightGradBackward", "MmBackward0"}
    assert fused_nodes <= _graph_nodes(la) and not fused_nodes & _graph_nodes(lb)
    la.backward()
    lb.backward()
    torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-5)
    scale = max(float(p.grad.abs().max()) for p in stock.parameters())
    for (name, a), b in zip(model.named_parameters(), stock.parameters()):
        # Biases of BNs that feed another BN have a true gradient of 0 (float noise either way): hence atol.
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-4 * scale, msg=name)
    for (name, a), b in zip(model.named_buffers(), stock.buffers()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_stock_ops_where_the_fused_paths_do_not_apply(monkeypatch):
    arch = scale_arch(efficientnet_b0(), width=0.25, depth=0.5)
    model = kernels.accelerate(build_model(arch, num_classes=10))
    y = torch.arange(4)
    nchw = torch.randn(4, 3, 64, 64)  # no map below 2x2 (a 1x1 map is channels_last in either layout)
    assert not {"_BNActTrainBackward", "_SEGateBackward"} & _graph_nodes(F.cross_entropy(model(nchw), y))
    model = model.to(memory_format=CL)
    cl = _cl(nchw)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert "_BNActTrainBackward" not in _graph_nodes(F.cross_entropy(model(cl), y))
    traced = torch.jit.trace(model.eval(), cl)  # fvcore traces the model: it must see stock ops only
    graph = str(traced.inlined_graph)
    assert "aten::batch_norm" in graph and "aten::silu" in graph and "PythonOp" not in graph
    model.train()
    monkeypatch.setenv(kernels.ENV_VAR, "0")
    loss = F.cross_entropy(model(cl), y)
    assert not {"_BNActTrainBackward", "_SEGateBackward"} & _graph_nodes(loss)
    loss.backward()  # and the stock path still trains
