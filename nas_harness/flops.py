"""FLOPs and parameters: fvcore on a built model, and an analytic counter that agrees with it exactly.

Convention: like fvcore and like the EfficientNet paper's "0.39B FLOPS", one multiply-add counts as ONE
flop, i.e. every number here is in **MACs**.  fvcore counts, per operator, in eval mode at batch 1:

- ``conv``: out_h · out_w · out_c · (in_c / groups) · k² (bias ignored),
- ``linear``: in · out,
- ``batch_norm`` (eval, affine): 2 · input elements,
- ``adaptive_avg_pool2d``: input elements,

and skips element-wise ops (activations, sigmoid, the SE multiply, the residual add).  The analytic counter
reproduces those four buckets from the arch and resolution alone — thousands of times faster than tracing
— and additionally reports what fvcore skips under :attr:`MacCount.elementwise` (not part of ``total``).

``count_macs(..., convention="thop")`` gives the count of thop (``thop.profile``, the convention of most NAS
benchmark tables, Accel-NASBench's ``macs`` among them): convolutions and linear layers as above (biases not
counted), batch norm **4** operations per element (thop counts 2 per element and doubles it for an affine
layer), adaptive average pooling input **plus output** elements.  It reproduces all 5,138 Accel-NASBench
records exactly (``tests/tables``).

The analytic counter needs only :mod:`nas_harness.arch` (no torch, no model module); :func:`fvcore_macs`
imports torch and fvcore when called.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from nas_harness.arch import Arch, expanded_channels, se_squeeze_channels

FVCORE_OPS = ("conv", "batch_norm", "adaptive_avg_pool2d", "linear")


@dataclass(frozen=True)
class MacCount:
    """MACs (fvcore "flops") in total and per operator; ``elementwise`` is what fvcore does not count."""

    total: int
    by_op: dict[str, int]
    elementwise: dict[str, int] = field(default_factory=dict)

    @property
    def conv_linear(self) -> int:
        return self.by_op.get("conv", 0) + self.by_op.get("linear", 0)


@dataclass(frozen=True)
class StageCount:
    """One row of the per-stage table: output channels and feature-map size, MACs and params added."""

    name: str
    channels: int
    hw: tuple[int, int]
    macs: int
    params: int


def _out(size: int, kernel: int, stride: int) -> int:
    pad = (kernel - 1) // 2
    return (size + 2 * pad - kernel) // stride + 1


class _Counter:
    def __init__(self) -> None:
        self.ops = dict.fromkeys(FVCORE_OPS, 0)
        self.elem = {"activation": 0, "se_scale": 0, "residual_add": 0}
        self.params = 0
        self.pool_outputs = 0  # output elements of the adaptive average pools (thop counts them)
        self.rows: list[StageCount] = []

    def mark(self, name: str, hw: tuple[int, int], channels: int) -> None:
        """Close a row of the per-stage table: what was added since the previous mark."""
        macs_before = sum(r.macs for r in self.rows)
        params_before = sum(r.params for r in self.rows)
        self.rows.append(StageCount(name, channels, hw, sum(self.ops.values()) - macs_before,
                                    self.params - params_before))

    def conv_bn(self, cin: int, cout: int, k: int, stride: int, hw: tuple[int, int], groups: int = 1,
                act: bool = True) -> tuple[int, int]:
        h, w = _out(hw[0], k, stride), _out(hw[1], k, stride)
        self.ops["conv"] += h * w * cout * (cin // groups) * k * k
        self.ops["batch_norm"] += 2 * cout * h * w
        self.params += cout * (cin // groups) * k * k + 2 * cout
        if act:
            self.elem["activation"] += cout * h * w
        return h, w


def _count(arch: Arch, resolution: int | tuple[int, int], num_classes: int, in_channels: int,
           stem_stride: int | None) -> _Counter:
    c = _Counter()
    hw = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    hw = c.conv_bn(in_channels, arch.stem_channels, 3, arch.stem_stride if stem_stride is None else stem_stride,
                   hw)
    c.mark("stem", hw, arch.stem_channels)
    cin = arch.stem_channels
    for si, st in enumerate(arch.stages, start=1):
        for i in range(st.repeats):
            stride = st.stride if i == 0 else 1
            mid = expanded_channels(cin, st.expand)
            if mid != cin:
                hw = c.conv_bn(cin, mid, 1, 1, hw)
            hw = c.conv_bn(mid, mid, st.kernel, stride, hw, groups=mid)
            if st.se is not None:
                sq = se_squeeze_channels(cin, st.se)
                c.ops["adaptive_avg_pool2d"] += mid * hw[0] * hw[1]
                c.pool_outputs += mid
                c.ops["conv"] += 2 * mid * sq
                c.params += 2 * mid * sq + mid + sq
                c.elem["activation"] += sq + mid  # act + sigmoid
                c.elem["se_scale"] += mid * hw[0] * hw[1]
            hw = c.conv_bn(mid, st.channels, 1, 1, hw, act=False)
            if st.skip and stride == 1 and cin == st.channels:
                c.elem["residual_add"] += st.channels * hw[0] * hw[1]
            cin = st.channels
        c.mark(f"stage {si}", hw, st.channels)
    hw = c.conv_bn(cin, arch.head_channels, 1, 1, hw)
    c.ops["adaptive_avg_pool2d"] += arch.head_channels * hw[0] * hw[1]
    c.pool_outputs += arch.head_channels
    c.ops["linear"] += arch.head_channels * num_classes
    c.params += arch.head_channels * num_classes + num_classes
    c.mark("head", (1, 1), num_classes)
    return c


MAC_CONVENTIONS = ("fvcore", "thop")


def count_macs(arch: Arch, resolution: int | tuple[int, int] = 224, num_classes: int = 1000,
               in_channels: int = 3, stem_stride: int | None = None, convention: str = "fvcore") -> MacCount:
    """Analytic MACs of ``arch`` at ``resolution`` (batch 1, eval).

    ``convention="fvcore"`` (the default) is identical to :func:`fvcore_macs`; ``"thop"`` is thop's count
    (batch norm 4 operations per element, pooling input + output elements; see the module docstring).
    ValueError for another convention.
    """
    if convention not in MAC_CONVENTIONS:
        raise ValueError(f"count_macs: convention {convention!r}; allowed: {', '.join(MAC_CONVENTIONS)}")
    c = _count(arch, resolution, num_classes, in_channels, stem_stride)
    ops = dict(c.ops)
    if convention == "thop":
        ops["batch_norm"] *= 2
        ops["adaptive_avg_pool2d"] += c.pool_outputs
    return MacCount(total=sum(ops.values()), by_op=ops, elementwise=dict(c.elem))


def stage_table(arch: Arch, resolution: int | tuple[int, int] = 224, num_classes: int = 1000,
                in_channels: int = 3, stem_stride: int | None = None) -> list[StageCount]:
    """Per-stage MACs and params (stem, each stage, head + classifier); rows sum to the totals."""
    return _count(arch, resolution, num_classes, in_channels, stem_stride).rows


#: Most memory :func:`fvcore_macs` may be asked to use (bytes, by :func:`trace_bytes`): fvcore traces the model
#: on one real image, keeping every activation (EfficientNet-B7 at 600 px: about 5.2 GiB).
FVCORE_MAX_BYTES = 8 << 30


def trace_bytes(arch: Arch, resolution: int | tuple[int, int] = 224, num_classes: int = 1000,
                in_channels: int = 3, stem_stride: int | None = None) -> int:
    """An upper estimate of the memory (bytes) fvcore's trace of ``arch`` at ``resolution`` needs: twice the
    float32 size of every activation the forward pass makes (conv/BN outputs, activations, SE scaling, residual
    sums); measured peaks on CPU were 1.3-2.1x below it (B0 at 224-896 px)."""
    c = _count(arch, resolution, num_classes, in_channels, stem_stride)
    elements = c.elem["activation"] + c.ops["batch_norm"] // 2 + c.elem["se_scale"] + c.elem["residual_add"]
    return 2 * 4 * elements


def count_params(arch: Arch, num_classes: int = 1000, in_channels: int = 3) -> int:
    """Trainable parameters of ``build_model(arch, num_classes, in_channels)`` without building it."""
    return _count(arch, 32, num_classes, in_channels, None).params


def fvcore_macs(model, resolution: int | tuple[int, int] = 224, in_channels: int = 3) -> MacCount:
    """fvcore's count of a built model (traced in eval mode at batch 1, on CPU; the model is left as found).

    fvcore's "flops" are MACs (one multiply-add = one flop); see the module docstring.
    """
    import torch
    from fvcore.nn import FlopCountAnalysis

    hw = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    was_training = model.training
    param = next(model.parameters())
    model.eval()
    try:
        x = torch.zeros(1, in_channels, *hw, device=param.device, dtype=param.dtype)
        fca = FlopCountAnalysis(model, x)
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            by_op = {k: int(v) for k, v in fca.by_operator().items()}
            total = int(fca.total())
    finally:
        model.train(was_training)
    return MacCount(total=total, by_op=by_op)
