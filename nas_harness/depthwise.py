"""Depthwise convolution whose CPU weight gradient stays fast on feature maps smaller than the kernel.

Why this exists: at proxy resolution (28–32 px) the last MBConv stages run on 4×4, 2×2 or 1×1 maps with
3×3 / 5×5 depthwise kernels.  For exactly those shapes (kernel larger than the map) oneDNN's CPU
depthwise *weight-gradient* kernel falls back to a slow path: 20–45 ms per layer at batch 128 on the
2-core CI machine, while the forward pass takes about 1 ms.  That fallback alone was about half of a
B0-w0.5 training step.  Here the weight gradient of those layers is computed as a sum of per-position
products instead — the same quantity, exact up to float summation order (see ``tests/test_depthwise.py``),
at 0.1–4 ms; it is used up to 5×5 maps, beyond which it stops winning.  Everything else (input gradient,
forward, GPU, larger maps, autocast, tracing for fvcore, ``torch.compile``) goes through the native
``nn.Conv2d`` path unchanged.

``DepthwiseConv2d`` *is* an ``nn.Conv2d`` (same parameters and state-dict keys), so the model
keeps torchvision's layout and FLOP counting sees an ordinary convolution.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

# Above this many (input, output) position pairs the pair sum loses to the native kernel (measured: 5x5
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


class _SmallMapDepthwise(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,  # type: ignore[override]
                stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, bias is not None)
        return F.conv2d(x, weight, bias, stride, padding, 1, x.shape[1])

    @staticmethod
    @once_differentiable  # no double backward through this path: say so instead of returning wrong grads
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        stride, padding, has_bias = ctx.conf
        grad_out = grad_out.contiguous(memory_format=torch.channels_last) if x.is_contiguous(
            memory_format=torch.channels_last) else grad_out.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, list(stride), list(padding), [1, 1], False, [0, 0], x.shape[1],
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_w = depthwise_weight_grad(x, grad_out, tuple(weight.shape[-2:]), stride, padding)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(c, c, k, groups=c)`` that trains fast on CPU when the map is smaller than the kernel."""

    def __init__(self, channels: int, kernel: int, stride: int = 1, padding: int | None = None,
                 bias: bool = False) -> None:
        super().__init__(channels, channels, kernel, stride, (kernel - 1) // 2 if padding is None else padding,
                         groups=channels, bias=bias)

    def _fast_weight_grad(self, x: torch.Tensor) -> bool:
        if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
            return False  # fvcore / export / inductor must see the plain convolution
        if (self.dilation != (1, 1) or self.padding_mode != "zeros" or not isinstance(self.padding, tuple)
                or x.dim() != 4 or x.device.type != "cpu" or x.dtype != torch.float32):
            return False
        (kh, kw), (h, w) = self.kernel_size, x.shape[-2:]
        if not (kh > h or kw > w):
            return False  # oneDNN's own kernel is fine when the kernel fits in the map
        ho = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        return (h * w * ho * wo <= _MAX_PAIRS and self.weight.requires_grad and torch.is_grad_enabled()
                and not torch.is_autocast_enabled("cpu"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast_weight_grad(x):
            return _SmallMapDepthwise.apply(x, self.weight, self.bias, self.stride, self.padding)
        return super().forward(x)

