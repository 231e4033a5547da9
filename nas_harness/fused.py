"""Fused CPU training paths for the model's BatchNorm+activation and squeeze-and-excitation layers.

Why this exists: profiling a B0-w0.5 training step at 32 px on CPU put about a third of it in BatchNorm and
SiLU and another tenth in SE's gating: separate ATen passes over full-size activations (BN statistics,
BN output, SiLU output, and as many again for their gradients; for SE, five passes and three temporaries
in its backward), with SiLU bound by its exp.  The C kernels of :mod:`nas_harness.native` compute the
same functions in fewer passes:

- :func:`bn_act`: one statistics pass and one output pass each way; the BN output is never stored (the
  backward recomputes it from the BN input, which the convolution before it keeps anyway).  Running
  statistics and ``num_batches_tracked`` are updated exactly as ``nn.BatchNorm2d`` does.
- :func:`se_gate`: ``x * gate(mean(x))`` whose backward is one reduction and one write, the pooling's
  gradient folded into the input gradient; the tiny gate MLP's backward is written out.

Results match the stock modules to float rounding (``tests/test_fused.py``).  Only channels_last float32
CPU tensors without autocast take these paths, and never while tracing (fvcore), scripting or compiling;
everything else, GPU included, runs the stock modules unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from nas_harness import native

ACTS: dict[type[nn.Module], int] = {nn.SiLU: 1, nn.ReLU: 2, nn.Hardswish: 3}  # codes in bn_act.c
_NONE = 0


def cpu_fast_path(x: torch.Tensor, channels_last: bool = True) -> bool:
    """The checks every custom CPU path shares: eager (not traced) CPU float32 4-D data, no autocast."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False  # fvcore / export / inductor must see the stock ops
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4 or x.numel() == 0:
        return False
    return not (torch.is_autocast_enabled("cpu")
                or (channels_last and not x.is_contiguous(memory_format=torch.channels_last)))


def _rows(x: torch.Tensor) -> tuple[int, int]:
    """(M, C) of the row-major [N*H*W, C] matrix that a channels_last tensor is in memory."""
    n, c, h, w = x.shape
    return n * h * w, c


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _needs_graph(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# --- BatchNorm + activation ------------------------------------------------------------------------------

def _bn_train_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, running_mean: torch.Tensor | None,
                      running_var: torch.Tensor | None, factor: float, eps: float, act: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    m, c = _rows(x)
    out = torch.empty_like(x, memory_format=torch.channels_last)
    mean, invstd = torch.empty(c), torch.empty(c)
    native.library().bn_act_forward_train(x.data_ptr(), out.data_ptr(), m, c, weight.data_ptr(), bias.data_ptr(),
                                          _ptr(running_mean), _ptr(running_var), factor, eps, act, mean.data_ptr(),
                                          invstd.data_ptr())
    return out, mean, invstd


class _BNActTrain(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,  # type: ignore[override]
                running_mean: torch.Tensor | None, running_var: torch.Tensor | None, factor: float, eps: float,
                act: int) -> torch.Tensor:
        out, mean, invstd = _bn_train_forward(x, weight, bias, running_mean, running_var, factor, eps, act)
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.act = act
        return out

    @staticmethod
    @once_differentiable  # no double backward through this path: say so instead of returning wrong grads
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, weight, bias, mean, invstd = ctx.saved_tensors
        g = grad_out.contiguous(memory_format=torch.channels_last)
        m, c = _rows(x)
        dx = torch.empty_like(x, memory_format=torch.channels_last)
        dw = torch.empty(c) if ctx.needs_input_grad[1] else None
        db = torch.empty(c) if ctx.needs_input_grad[2] else None
        native.library().bn_act_backward(g.data_ptr(), x.data_ptr(), dx.data_ptr(), m, c, weight.data_ptr(),
                                         bias.data_ptr(), mean.data_ptr(), invstd.data_ptr(), ctx.act, _ptr(dw),
                                         _ptr(db))
        return dx, dw, db, None, None, None, None, None


def bn_act_fusable(x: torch.Tensor, bn: nn.Module, act: nn.Module | None) -> bool:
    """Whether :func:`bn_act` can run ``act(bn(x))`` (else the caller runs the stock modules)."""
    if type(bn) is not nn.BatchNorm2d or not bn.affine or (act is not None and type(act) not in ACTS):
        return False
    if bn.weight.dtype != torch.float32 or not bn.weight.is_contiguous() or not bn.bias.is_contiguous():
        return False
    if not (bn.training or not bn.track_running_stats) and _needs_graph(x, bn.weight, bn.bias):
        return False  # gradients through eval-mode BN: rare, left to the stock ops
    return cpu_fast_path(x) and native.available()


def bn_act(x: torch.Tensor, bn: nn.BatchNorm2d, act: nn.Module | None) -> torch.Tensor:
    """``act(bn(x))`` with the fused kernels; call only where :func:`bn_act_fusable` said yes."""
    code = _NONE if act is None else ACTS[type(act)]
    if not bn.training and bn.track_running_stats:
        m, c = _rows(x)
        out = torch.empty_like(x, memory_format=torch.channels_last)
        native.library().bn_act_forward_eval(x.data_ptr(), out.data_ptr(), m, c, bn.weight.data_ptr(),
                                             bn.bias.data_ptr(), bn.running_mean.data_ptr(),
                                             bn.running_var.data_ptr(), bn.eps, code)
        return out
    if _rows(x)[0] <= 1:  # the stock module's own error
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
        return _bn_train_forward(x, bn.weight, bn.bias, rm, rv, factor, bn.eps, code)[0]


# --- Squeeze-and-excitation gating -----------------------------------------------------------------------

# d act(z) / dz applied to a gradient, for the gate's hidden activation: (grad, pre-activation z, act(z), module).
_ACT_BACKWARD: dict[type[nn.Module], Callable[..., torch.Tensor]] = {
    nn.SiLU: lambda g, z, h, m: torch.ops.aten.silu_backward(g, z),
    nn.ReLU: lambda g, z, h, m: torch.ops.aten.threshold_backward(g, h, 0),
    nn.Hardswish: lambda g, z, h, m: torch.ops.aten.hardswish_backward(g, z),
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
        hidden = act(z1)
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
        n, c, h, w = x.shape
        lib = native.library()
        grad_s = torch.empty(n, c)
        lib.se_gate_grad(g.data_ptr(), x.data_ptr(), grad_s.data_ptr(), n, h * w, c)
        gz2 = torch.ops.aten.sigmoid_backward(grad_s, s)
        gz1 = _ACT_BACKWARD[type(ctx.act)](gz2 @ w2.flatten(1), z1, hidden, ctx.act)
        grad_w2 = (gz2.t() @ hidden).view(w2.shape) if need_w2 else None
        grad_b2 = gz2.sum(0) if need_b2 and ctx.has_bias[1] else None
        grad_w1 = (gz1.t() @ pooled).view(w1.shape) if need_w1 else None
        grad_b1 = gz1.sum(0) if need_b1 and ctx.has_bias[0] else None
        grad_x = None
        if need_x:
            grad_x = torch.empty_like(x, memory_format=torch.channels_last)
            # Named locals: a temporary's memory would be freed before the C call reads it.
            s, through_pool = s.contiguous(), (gz1 @ w1.flatten(1)).div_(h * w)
            lib.se_input_grad(g.data_ptr(), s.data_ptr(), through_pool.data_ptr(), grad_x.data_ptr(), n, h * w, c)
        return grad_x, None, grad_w1, grad_b1, grad_w2, grad_b2


def se_gate(x: torch.Tensor, fc1: nn.Conv2d, fc2: nn.Conv2d, act: nn.Module) -> torch.Tensor | None:
    """``x * sigmoid(fc2(act(fc1(mean(x)))))`` with the fused backward, or None where it does not apply."""
    if type(act) not in _ACT_BACKWARD or not (_needs_graph(x, fc1.weight, fc2.weight) and cpu_fast_path(x)):
        return None  # without a graph the stock ops are already one pass each
    if fc1.weight.dtype != torch.float32 or not native.available():
        return None
    return _SEGate.apply(x, act, fc1.weight, fc1.bias, fc2.weight, fc2.bias)
