"""The one builder: :class:`~nas_harness.arch.Arch` → ``nn.Module``, made of stock PyTorch modules.

Module names, order, shapes and classes mirror torchvision's ``efficientnet_b0`` (``features`` / ``avgpool``
/ ``classifier``, each MBConv's layers under ``.block``, conv→BN→act blocks as ``nn.Sequential``, in-place
SiLU), so a torchvision state dict loads into the B0..B7 built here key for key, and weights copied across
give the same outputs.  Blocks are small and switchable: SE (``se_ratio=None``) and the residual skip
(``skip=False``) are per-block options, which is what the ablations flip.

As in timm, the architecture is decoded once and the blocks take *layer factories* (``norm_layer``,
``act_layer``): the arch's BatchNorm ``eps``/``momentum`` and activation reach every layer that way.  Nothing
here knows about the CPU training kernels; :func:`nas_harness.kernels.accelerate` swaps the fast module
classes in, once, on a built model (the trainer does it on CPU unless ``train.cpu_kernels = "off"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from nas_harness.arch import Arch, expanded_channels, se_squeeze_channels
from nas_harness.errors import ConfigError

LayerFactory = Callable[..., nn.Module]

# torchvision builds every activation in place (Conv2dNormActivation's default, and SE's activation).
_ACT: dict[str, LayerFactory] = {
    "silu": partial(nn.SiLU, inplace=True),
    "relu": partial(nn.ReLU, inplace=True),
    "hswish": partial(nn.Hardswish, inplace=True),
    "gelu": nn.GELU,
}


def act_factory(name: str) -> LayerFactory:
    """The activation factory for an arch's ``act`` name."""
    if name not in _ACT:
        raise ConfigError(f"activation {name!r}: expected one of {', '.join(_ACT)}")
    return _ACT[name]


def norm_factory(arch: Arch) -> LayerFactory:
    """The BatchNorm factory with the arch's ``eps`` and ``momentum``."""
    return partial(nn.BatchNorm2d, eps=arch.bn_eps, momentum=arch.bn_momentum)



def init_weights(net: nn.Module) -> None:
    """torchvision's EfficientNet initialisation of every conv, BatchNorm and linear layer of ``net``, in module
    order (so trained-from-scratch results are comparable with it; the supernet starts its largest net so too)."""
    for m in net.modules():
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

class ConvBNAct(nn.Sequential):
    """conv (no bias) → BN → optional activation: torchvision's ``Conv2dNormActivation`` (same children)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 norm_layer: LayerFactory = nn.BatchNorm2d, act_layer: LayerFactory | None = _ACT["silu"]) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                                   norm_layer(cout)]
        if act_layer is not None:
            layers.append(act_layer())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Channel attention: pool → 1×1 conv → act → 1×1 conv → sigmoid → scale the input (torchvision's)."""

    def __init__(self, channels: int, squeeze: int, act_layer: LayerFactory = _ACT["silu"]) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = act_layer()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
                 se_ratio: float | None, skip: bool = True, drop_path: float = 0.0,
                 norm_layer: LayerFactory = nn.BatchNorm2d, act_layer: LayerFactory = _ACT["silu"]) -> None:
        super().__init__()
        self.use_res_connect = skip and stride == 1 and cin == cout
        mid = expanded_channels(cin, expand)
        layers: list[nn.Module] = []
        if mid != cin:
            layers.append(ConvBNAct(cin, mid, 1, norm_layer=norm_layer, act_layer=act_layer))
        layers.append(ConvBNAct(mid, mid, kernel, stride, groups=mid, norm_layer=norm_layer, act_layer=act_layer))
        if se_ratio is not None:
            layers.append(SqueezeExcitation(mid, se_squeeze_channels(cin, se_ratio), act_layer=act_layer))
        layers.append(ConvBNAct(mid, cout, 1, norm_layer=norm_layer, act_layer=None))
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
        norm, act = norm_factory(arch), act_factory(arch.act)
        layers: list[nn.Module] = [
            ConvBNAct(in_channels, arch.stem_channels, 3, stride, norm_layer=norm, act_layer=act)]
        total = arch.num_blocks
        block_id = 0
        cin = arch.stem_channels
        for st in arch.stages:
            blocks = []
            for i in range(st.repeats):
                blocks.append(MBConv(cin, st.channels, st.kernel, st.stride if i == 0 else 1, st.expand, st.se,
                                     st.skip, arch.drop_path * block_id / total, norm_layer=norm, act_layer=act))
                cin = st.channels
                block_id += 1
            layers.append(nn.Sequential(*blocks))
        layers.append(ConvBNAct(cin, arch.head_channels, 1, norm_layer=norm, act_layer=act))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(arch.dropout, inplace=True),
                                        nn.Linear(arch.head_channels, num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def build_model(arch: Arch, num_classes: int = 1000, in_channels: int = 3,
                stem_stride: int | None = None) -> EfficientNet:
    """Build ``arch`` from stock PyTorch modules.  ``stem_stride=1`` is the proxy option for 28–32 px inputs
    (keeps the feature maps from collapsing to 1×1 after the stride-32 trunk) without changing the recorded
    arch."""
    if stem_stride not in (None, 1, 2):
        raise ConfigError(f"stem_stride: expected 1, 2 or None, got {stem_stride!r}")
    return EfficientNet(arch, num_classes=num_classes, in_channels=in_channels, stem_stride=stem_stride)
