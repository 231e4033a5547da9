"""Depthwise convolution whose CPU weight gradient does not take oneDNN's slow kernels.

Why this exists: oneDNN's CPU depthwise *weight-gradient* kernel is the slow one of the three a depthwise
layer trains with.  On the shapes of an MBConv net at proxy resolution (28–32 px, batch 128, two cores) it
takes 5–11 ms on 5×5 kernels over 8×8 and 16×16 maps, 2–4× its forward and input-gradient kernels, and
20–45 ms where the kernel is larger than the map (the last stages' 4×4, 2×2 and 1×1 maps), where it falls
back to a generic path.  That fallback alone was about half of a B0-w0.5 training step.

``DepthwiseConv2d`` computes that gradient itself on CPU, training, float32:

- channels_last data (what the trainer uses): the C kernel ``native/depthwise.c`` (through :mod:`._native`),
  a sum over output positions vectorised across channels: 1.6–3 ms where oneDNN takes 5–11 ms, and under
  1.5 ms where it takes 20–75 ms.  Used with at least 32 channels (below that oneDNN's kernel is faster)
  or where the kernel is larger than the map.
- otherwise, on maps smaller than the kernel: a sum of per-position products reduced by a fixed 0/1 tap
  matrix (:func:`depthwise_weight_grad`, no compiler needed), 0.1–4 ms; up to 5×5 maps, beyond which it
  stops winning.

Both are exact up to float summation order (``tests/kernels/test_depthwise.py``).  Everything else (input
gradient, forward, GPU, autocast, tracing for fvcore, ``torch.compile``) goes through the native
``nn.Conv2d`` path unchanged.  ``DepthwiseConv2d`` *is* an ``nn.Conv2d`` (same parameters and state-dict
keys, no state of its own), so :func:`~nas_harness.kernels.accelerate` turns a model's depthwise
``nn.Conv2d`` into one by changing its class, and FLOP counting sees an ordinary convolution.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from nas_harness.kernels import _native
from nas_harness.kernels._fused import cpu_fast_path

# The C kernel beats oneDNN's from this many channels up (measured 16: 3.2 vs 2.8 ms; 48: 3.1 vs 4.2 ms).
_NATIVE_MIN_CHANNELS = 32
# Above this many (input, output) position pairs the pair sum loses to oneDNN's kernel (measured: 5x5
# maps with a 7x7 kernel still win, 6x6 at stride 1 does not).
_MAX_PAIRS = 625


@lru_cache(maxsize=256)
def _tap_matrix(h: int, w: int, ho: int, wo: int, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int
                ) -> torch.Tensor:
    """0/1 matrix (kh*kw, h*w*ho*wo): which (input position, output position) pair each kernel tap joins."""
    m = torch.zeros(kh * kw, h * w, ho * wo)
    for oy in range(ho):
        for ox in range(wo):
            for i in range(kh):
                iy = oy * sh + i - ph
                if not 0 <= iy < h:
                    continue
                for j in range(kw):
                    ix = ox * sw + j - pw
                    if 0 <= ix < w:
                        m[i * kw + j, iy * w + ix, oy * wo + ox] = 1.0
    return m.view(kh * kw, h * w * ho * wo)


def depthwise_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel: tuple[int, int],
                          stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    """Weight gradient (C, 1, kh, kw) of a depthwise conv, via products of every input/output position pair.

    ``pair[a, b, c] = Σ_n x[n, c, a] · g[n, c, b]`` costs N·C·(H·W)·(Ho·Wo), which is small exactly when
    the map is small; a fixed 0/1 matrix then sums the pairs that each kernel tap connects.
    """
    n, c, h, w = x.shape
    ho, wo = grad_out.shape[-2:]
    xs = x.permute(0, 2, 3, 1).reshape(n, h * w, c)  # free view for channels_last input
    gs = grad_out.permute(0, 2, 3, 1).reshape(n, ho * wo, c)
    # Loop over the shorter side: each term is an (N, other, C) product reduced over the batch.
    if h * w <= ho * wo:
        pair = torch.stack([(xs[:, a: a + 1] * gs).sum(0) for a in range(h * w)])  # (hw, howo, C)
    else:
        pair = torch.stack([(xs * gs[:, b: b + 1]).sum(0) for b in range(ho * wo)], dim=1)
    taps = _tap_matrix(h, w, ho, wo, *kernel, *stride, *padding).to(device=x.device, dtype=pair.dtype)
    return (taps @ pair.reshape(h * w * ho * wo, c)).t().reshape(c, 1, *kernel)


class _DepthwiseWeightGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,  # type: ignore[override]
                stride: tuple[int, int], padding: tuple[int, int], use_native: bool) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, bias is not None, use_native)
        return F.conv2d(x, weight, bias, stride, padding, 1, x.shape[1])

    @staticmethod
    @once_differentiable  # no double backward through this path: say so instead of returning wrong grads
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride, padding, has_bias, use_native = ctx.conf
        grad_out = grad_out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
            memory_format=torch.channels_last) else grad_out.contiguous()
        kernel = tuple(weight.shape[-2:])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, list(stride), list(padding), [1, 1], False, [0, 0], x.shape[1],
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_w = (_native.depthwise_weight_grad if use_native else depthwise_weight_grad)(
                x, grad_out, kernel, stride, padding)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(c, c, k, groups=c)`` whose CPU weight gradient avoids oneDNN's slow kernels."""

    def __init__(self, channels: int, kernel: int, stride: int = 1, padding: int | None = None,
                 bias: bool = False) -> None:
        super().__init__(channels, channels, kernel, stride, (kernel - 1) // 2 if padding is None else padding,
                         groups=channels, bias=bias)

    def _weight_grad_path(self, x: torch.Tensor) -> str | None:
        """``native`` (C kernel), ``pairs`` (tap matrix) or None (oneDNN) for this input."""
        if not (self.weight.requires_grad and torch.is_grad_enabled()):
            return None
        if self.dilation != (1, 1) or self.padding_mode != "zeros" or not isinstance(self.padding, tuple):
            return None
        if not cpu_fast_path(x, channels_last=False):
            return None
        (kh, kw), (h, w) = self.kernel_size, x.shape[-2:]
        kernel_exceeds_map = kh > h or kw > w
        if x.is_contiguous(memory_format=torch.channels_last) and (
                x.shape[1] >= _NATIVE_MIN_CHANNELS or kernel_exceeds_map) and _native.available():
            return "native"
        ho = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        return "pairs" if kernel_exceeds_map and h * w * ho * wo <= _MAX_PAIRS else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path = self._weight_grad_path(x)
        if path is not None:
            return _DepthwiseWeightGrad.apply(x, self.weight, self.bias, self.stride, self.padding, path == "native")
        return super().forward(x)
