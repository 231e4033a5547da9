"""Fused CPU training paths for BatchNorm+activation and squeeze-and-excitation, and out-of-place activations.

Why this exists: profiling a B0-w0.5 training step at 32 px on CPU put about a third of it in BatchNorm and
SiLU and another tenth in SE's gating: separate ATen passes over full-size activations (BN statistics,
BN output, SiLU output, and as many again for their gradients; for SE, five passes and three temporaries
in its backward), with SiLU bound by its exp.  The C kernels (:mod:`._native`) compute the same functions
in fewer passes:

- :func:`bn_act`: one statistics pass and one output pass each way; the BN output is never stored (the
  backward recomputes it from the BN input, which the convolution before it keeps anyway).  Running
  statistics and ``num_batches_tracked`` are updated exactly as ``nn.BatchNorm2d`` does.
- :func:`se_gate`: ``x * gate(mean(x))`` whose backward is one reduction and one write, the pooling's
  gradient folded into the input gradient; the tiny gate MLP's backward is written out.
- :class:`OutOfPlaceSiLU` / :class:`OutOfPlaceHardswish`: an in-place SiLU makes autograd clone the whole
  activation first (its gradient needs the input); measured 5-11% of a CPU training step.

Results match the stock modules to float rounding (``tests/kernels/test_fused.py``).  Only channels_last
float32 CPU tensors without autocast take these paths, and never while tracing (fvcore), scripting or
compiling; everything else, GPU included, runs the stock computation unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from nas_harness.kernels import _native


class OutOfPlaceSiLU(nn.SiLU):
    """``nn.SiLU`` that never runs in place (whatever its ``inplace`` flag, which is kept for undoing)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)

    def extra_repr(self) -> str:
        return "out of place"


class OutOfPlaceHardswish(nn.Hardswish):
    """``nn.Hardswish`` that never runs in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardswish(x)

    def extra_repr(self) -> str:
        return "out of place"


# Activation codes of bn_act.c, by module class (exact classes: a subclass may compute something else).
ACTS: dict[type[nn.Module], int] = {nn.SiLU: 1, OutOfPlaceSiLU: 1, nn.ReLU: 2, nn.Hardswish: 3,
                                    OutOfPlaceHardswish: 3}
_NONE = 0


def cpu_fast_path(x: torch.Tensor, channels_last: bool = True) -> bool:
    """The checks every custom CPU path shares: eager (not traced) CPU float32 4-D data, no autocast."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False  # fvcore / export / inductor must see the stock ops
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4 or x.numel() == 0:
        return False
    return not (torch.is_autocast_enabled("cpu")
                or (channels_last and not x.is_contiguous(memory_format=torch.channels_last)))


def _needs_graph(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# --- BatchNorm + activation ------------------------------------------------------------------------------

class _BNActTrain(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,  # type: ignore[override]
                running_mean: torch.Tensor | None, running_var: torch.Tensor | None, factor: float, eps: float,
                act: int) -> torch.Tensor:
        out, mean, invstd = _native.bn_act_forward_train(x, weight, bias, running_mean, running_var, factor, eps,
                                                         act)
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.act = act
        return out

    @staticmethod
    @once_differentiable  # no double backward through this path: say so instead of returning wrong grads
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, weight, bias, mean, invstd = ctx.saved_tensors
        g = grad_out.contiguous(memory_format=torch.channels_last)
        dx, dw, db = _native.bn_act_backward(g, x, weight, bias, mean, invstd, ctx.act, ctx.needs_input_grad[1],
                                             ctx.needs_input_grad[2])
        return dx, dw, db, None, None, None, None, None


def bn_act_fusable(x: torch.Tensor, bn: nn.Module, act: nn.Module | None) -> bool:
    """Whether :func:`bn_act` can run ``act(bn(x))`` (else the caller runs the stock modules)."""
    if type(bn) is not nn.BatchNorm2d or not bn.affine or (act is not None and type(act) not in ACTS):
        return False
    if bn.weight.dtype != torch.float32 or not bn.weight.is_contiguous() or not bn.bias.is_contiguous():
        return False
    if not (bn.training or not bn.track_running_stats) and _needs_graph(x, bn.weight, bn.bias):
        return False  # gradients through eval-mode BN: rare, left to the stock ops
    return cpu_fast_path(x) and _native.available()


def bn_act(x: torch.Tensor, bn: nn.BatchNorm2d, act: nn.Module | None) -> torch.Tensor:
    """``act(bn(x))`` with the fused kernels; call only where :func:`bn_act_fusable` said yes."""
    code = _NONE if act is None else ACTS[type(act)]
    if not bn.training and bn.track_running_stats:
        return _native.bn_act_forward_eval(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps, code)
    if x.shape[0] * x.shape[2] * x.shape[3] <= 1:  # the stock module's own error, before any state changes
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {list(x.shape)}")
    factor = 0.0 if bn.momentum is None else bn.momentum
    track = bn.training and bn.track_running_stats
    if track:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average
            factor = 1.0 / float(bn.num_batches_tracked)
    rm, rv = (bn.running_mean, bn.running_var) if track else (None, None)
    if _needs_graph(x, bn.weight, bn.bias):
        return _BNActTrain.apply(x, bn.weight, bn.bias, rm, rv, factor, bn.eps, code)
    with torch.no_grad():
        return _native.bn_act_forward_train(x, bn.weight, bn.bias, rm, rv, factor, bn.eps, code)[0]


# --- Squeeze-and-excitation gating -----------------------------------------------------------------------

# The gate's hidden activation, out of place whatever the module's flag: (pre-activation z, module) -> act(z).
_ACT_FORWARD: dict[type[nn.Module], Callable[[torch.Tensor, nn.Module], torch.Tensor]] = {
    nn.SiLU: lambda z, m: F.silu(z),
    OutOfPlaceSiLU: lambda z, m: F.silu(z),
    nn.ReLU: lambda z, m: F.relu(z),
    nn.Hardswish: lambda z, m: F.hardswish(z),
    OutOfPlaceHardswish: lambda z, m: F.hardswish(z),
    nn.GELU: lambda z, m: F.gelu(z, approximate=m.approximate),
}
# d act(z) / dz applied to a gradient: (grad, pre-activation z, act(z), module).
_ACT_BACKWARD: dict[type[nn.Module], Callable[..., torch.Tensor]] = {
    nn.SiLU: lambda g, z, h, m: torch.ops.aten.silu_backward(g, z),
    OutOfPlaceSiLU: lambda g, z, h, m: torch.ops.aten.silu_backward(g, z),
    nn.ReLU: lambda g, z, h, m: torch.ops.aten.threshold_backward(g, h, 0),
    nn.Hardswish: lambda g, z, h, m: torch.ops.aten.hardswish_backward(g, z),
    OutOfPlaceHardswish: lambda g, z, h, m: torch.ops.aten.hardswish_backward(g, z),
    nn.GELU: lambda g, z, h, m: torch.ops.aten.gelu_backward(g, z, approximate=m.approximate),
}


class _SEGate(torch.autograd.Function):
    """``x * sigmoid(fc2(act(fc1(mean(x)))))``; the gate MLP runs on (N, C) rows, its 1x1 convs as matmuls.

    The backward of that tiny MLP is written out (a recomputed autograd graph inside the backward cost
    about 1 ms per SE block, more than the full-size passes at proxy sizes).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, act: nn.Module, w1: torch.Tensor,  # type: ignore[override]
                b1: torch.Tensor | None, w2: torch.Tensor, b2: torch.Tensor | None) -> torch.Tensor:
        pooled = x.mean((2, 3))
        z1 = F.linear(pooled, w1.flatten(1), b1)
        hidden = _ACT_FORWARD[type(act)](z1, act)
        s = torch.sigmoid(F.linear(hidden, w2.flatten(1), b2))
        ctx.save_for_backward(x, pooled, z1, hidden, s, w1, w2)
        ctx.act = act
        ctx.has_bias = (b1 is not None, b2 is not None)
        return x * s[:, :, None, None]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, pooled, z1, hidden, s, w1, w2 = ctx.saved_tensors
        need_x, _, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad
        g = grad_out.contiguous(memory_format=torch.channels_last)
        h, w = x.shape[-2:]
        grad_s = _native.se_gate_grad(g, x)
        gz2 = torch.ops.aten.sigmoid_backward(grad_s, s)
        gz1 = _ACT_BACKWARD[type(ctx.act)](gz2 @ w2.flatten(1), z1, hidden, ctx.act)
        grad_w2 = (gz2.t() @ hidden).view(w2.shape) if need_w2 else None
        grad_b2 = gz2.sum(0) if need_b2 and ctx.has_bias[1] else None
        grad_w1 = (gz1.t() @ pooled).view(w1.shape) if need_w1 else None
        grad_b1 = gz1.sum(0) if need_b1 and ctx.has_bias[0] else None
        grad_x = None
        if need_x:
            through_pool = (gz1 @ w1.flatten(1)).div_(h * w)
            grad_x = _native.se_input_grad(g, s.contiguous(), through_pool)
        return grad_x, None, grad_w1, grad_b1, grad_w2, grad_b2


def se_gate(x: torch.Tensor, fc1: nn.Conv2d, fc2: nn.Conv2d, act: nn.Module) -> torch.Tensor | None:
    """``x * sigmoid(fc2(act(fc1(mean(x)))))`` with the fused backward, or None where it does not apply."""
    if type(act) not in _ACT_BACKWARD or not (_needs_graph(x, fc1.weight, fc2.weight) and cpu_fast_path(x)):
        return None  # without a graph the stock ops are already one pass each
    if fc1.weight.dtype != torch.float32 or not _native.available():
        return None
    return _SEGate.apply(x, act, fc1.weight, fc1.bias, fc2.weight, fc2.bias)
