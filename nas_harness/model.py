"""The one builder: :class:`~nas_harness.arch.Arch` → ``nn.Module``.

Module names, order and shapes mirror torchvision's ``efficientnet_b0`` (``features`` / ``avgpool`` /
``classifier``, each MBConv's layers under ``.block``), so a torchvision state dict loads into the B0 built
here key for key, and weights copied across give the same outputs.  Blocks are small and switchable:
SE (``se_ratio=None``) and the residual skip (``skip=False``) are per-block options, which is what the
ablations flip.  Deliberate differences in *how*, not in the function computed: depthwise layers are
:class:`~nas_harness.depthwise.DepthwiseConv2d` (fast CPU weight gradient), conv→BN→act blocks and SE run
fused CPU kernels (:mod:`nas_harness.fused`) where they apply, and SiLU runs out of place;
:func:`stock_layers` undoes all of it when a byte-for-byte torchvision module tree is wanted.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nas_harness.arch import Arch
from nas_harness.depthwise import DepthwiseConv2d
from nas_harness.fused import bn_act, bn_act_fusable, cpu_fast_path, se_gate
from nas_harness.scaling import make_divisible

# 1x1 convolutions on maps of at most this many positions run as one matmul on CPU (see ConvBNAct).
_PW_MAX_POSITIONS = 16

# SiLU and hard-swish run out of place: their gradient needs the input, so an in-place version makes
# autograd clone the whole activation first (measured: 5-11% of a CPU training step for B0-w0.5).  ReLU's
# gradient needs only the output, so it stays in place.
_ACT: dict[str, Callable[[], nn.Module]] = {
    "silu": lambda: nn.SiLU(),
    "relu": lambda: nn.ReLU(inplace=True),
    "hswish": lambda: nn.Hardswish(),
    "gelu": lambda: nn.GELU(),
}


def expanded_channels(in_channels: int, expand: float) -> int:
    """Width of an MBConv's depthwise stage (torchvision rounds ``in × e`` to a multiple of 8)."""
    return make_divisible(in_channels * expand, 8)


def se_squeeze_channels(in_channels: int, ratio: float) -> int:
    """SE bottleneck width, relative to the *block input* channels as in the reference."""
    return max(1, int(in_channels * ratio))


class ConvBNAct(nn.Sequential):
    """conv (no bias) → BN → optional activation; the layout of torchvision's ``Conv2dNormActivation``.

    BN and the activation run as one fused CPU kernel where :func:`~nas_harness.fused.bn_act_fusable`
    allows (channels_last float32 on CPU), otherwise as the stock modules; the module tree is the same,
    but on the fused path the BN and activation modules' own ``forward`` (and so their forward hooks)
    does not run: use :func:`stock_layers` or ``NAS_HARNESS_NATIVE=0`` where hooks must see them.
    A 1×1 convolution on a map of at most 4×4 positions runs as ``F.linear`` on the channels_last rows
    there: oneDNN's convolution backward costs about twice the two matmuls at those shapes (measured
    6% of a B0-w0.5 step at 32 px); on larger maps oneDNN is as fast or faster.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: str | None = "silu") -> None:
        depthwise = groups > 1 and groups == cin == cout
        conv = (DepthwiseConv2d(cin, kernel, stride) if depthwise
                else nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False))
        layers: list[nn.Module] = [conv, nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(_ACT[act]())
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self[0]
        if (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1 and conv.bias is None
                and cpu_fast_path(x) and x.shape[-1] * x.shape[-2] <= _PW_MAX_POSITIONS):  # (not when tracing)
            x = F.linear(x.permute(0, 2, 3, 1), conv.weight.flatten(1)).permute(0, 3, 1, 2)  # stays channels_last
        else:
            x = conv(x)
        bn, act = self[1], (self[2] if len(self) > 2 else None)
        if bn_act_fusable(x, bn, act):
            return bn_act(x, bn, act)
        x = bn(x)
        return x if act is None else act(x)


class SqueezeExcitation(nn.Module):
    """Channel attention: pool → 1×1 conv → act → 1×1 conv → sigmoid → scale the input.

    Trains through :func:`~nas_harness.fused.se_gate` (a two-pass backward) on CPU where it applies;
    ``fused = False`` (set by :func:`stock_layers`) keeps the stock ops.
    """

    fused = True

    def __init__(self, channels: int, squeeze: int, act: str = "silu") -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = _ACT[act]()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = se_gate(x, self.fc1, self.fc2, self.activation) if self.fused else None
        if out is not None:
            return out
        s = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return s * x


class StochasticDepth(nn.Module):
    """Drop the residual branch per sample with probability ``p`` during training ("row" mode)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
        return x * noise.div_(survival)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MBConv(nn.Module):
    """Mobile inverted bottleneck: [1×1 expand] → k×k depthwise → [SE] → 1×1 project → [+ input]."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: float,
                 se_ratio: float | None, skip: bool = True, drop_path: float = 0.0, act: str = "silu") -> None:
        super().__init__()
        self.use_res_connect = skip and stride == 1 and cin == cout
        mid = expanded_channels(cin, expand)
        layers: list[nn.Module] = []
        if mid != cin:
            layers.append(ConvBNAct(cin, mid, 1, act=act))
        layers.append(ConvBNAct(mid, mid, kernel, stride, groups=mid, act=act))
        if se_ratio is not None:
            layers.append(SqueezeExcitation(mid, se_squeeze_channels(cin, se_ratio), act=act))
        layers.append(ConvBNAct(mid, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop_path)
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


class EfficientNet(nn.Module):
    """stem → MBConv stages → 1×1 head conv → global average pool → dropout → linear classifier."""

    def __init__(self, arch: Arch, num_classes: int = 1000, in_channels: int = 3,
                 stem_stride: int | None = None) -> None:
        super().__init__()
        self.arch = arch
        stride = arch.stem_stride if stem_stride is None else stem_stride
        layers: list[nn.Module] = [ConvBNAct(in_channels, arch.stem_channels, 3, stride, act=arch.act)]
        total = arch.num_blocks
        block_id = 0
        cin = arch.stem_channels
        for st in arch.stages:
            blocks = []
            for i in range(st.repeats):
                blocks.append(MBConv(cin, st.channels, st.kernel, st.stride if i == 0 else 1, st.expand, st.se,
                                     st.skip, arch.drop_path * block_id / total, arch.act))
                cin = st.channels
                block_id += 1
            layers.append(nn.Sequential(*blocks))
        layers.append(ConvBNAct(cin, arch.head_channels, 1, act=arch.act))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(arch.dropout, inplace=True),
                                        nn.Linear(arch.head_channels, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation, so trained-from-scratch results are comparable with it.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def build_model(arch: Arch, num_classes: int = 1000, in_channels: int = 3,
                stem_stride: int | None = None) -> EfficientNet:
    """Build ``arch``.  ``stem_stride=1`` is the proxy option for 28–32 px inputs (keeps the feature maps
    from collapsing to 1×1 after the stride-32 trunk) without changing the recorded arch."""
    if stem_stride not in (None, 1, 2):
        from nas_harness.errors import ConfigError

        raise ConfigError(f"stem_stride: expected 1, 2 or None, got {stem_stride!r}")
    return EfficientNet(arch, num_classes=num_classes, in_channels=in_channels, stem_stride=stem_stride)


def stock_layers(model: nn.Module) -> nn.Module:
    """Turn a model from :func:`build_model` into the torchvision-equivalent one, weights kept, in place.

    Depthwise layers become stock ``nn.Conv2d``, conv→BN→act blocks plain ``nn.Sequential`` (as
    torchvision's ``Conv2dNormActivation`` is) with the activation in place, and SE blocks stop using the
    fused kernels.  The result computes the same function; it is the baseline ``nas-harness bench``
    compares against, and what code that must not depend on this package can use.
    """
    for mod in list(model.modules()):
        if isinstance(mod, SqueezeExcitation):
            mod.fused = False
        for name, child in list(mod.named_children()):
            if isinstance(child, DepthwiseConv2d):
                plain = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                                  child.padding, groups=child.groups, bias=child.bias is not None,
                                  device=child.weight.device, dtype=child.weight.dtype)
                plain.load_state_dict(child.state_dict())
                setattr(mod, name, plain)
    # A second pass, so the Sequential that replaces a ConvBNAct takes its already-swapped convolution.
    for mod in list(model.modules()):
        for name, child in list(mod.named_children()):
            if isinstance(child, ConvBNAct):
                if isinstance(child[-1], (nn.SiLU, nn.Hardswish)):
                    child[-1].inplace = True
                setattr(mod, name, nn.Sequential(*child))
    return model
