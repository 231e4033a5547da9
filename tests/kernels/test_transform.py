"""accelerate / deaccelerate: class swaps only, so parameters, buffers, keys, hooks and optimisers are unaffected."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from nas_harness import kernels
from nas_harness.kernels._depthwise import DepthwiseConv2d
from nas_harness.kernels._fused import OutOfPlaceSiLU
from nas_harness.kernels._transform import FusedConvBNAct, FusedSqueezeExcitation
from nas_harness.model import ConvBNAct, SqueezeExcitation, build_model
from nas_harness.presets import efficientnet_b0
from nas_harness.scaling import scale_arch

ARCH = scale_arch(efficientnet_b0(), width=0.25, depth=0.34)
CL = torch.channels_last


def _types(model: nn.Module) -> list[type]:
    return [type(m) for m in model.modules()]


def test_accelerate_swaps_classes_in_place_and_deaccelerate_restores_them():
    torch.manual_seed(0)
    model = build_model(ARCH, num_classes=10)
    before_types = _types(model)
    modules = list(model.modules())
    params = {k: p for k, p in model.named_parameters()}
    state = model.state_dict()
    flags = [m.inplace for m in model.modules() if isinstance(m, nn.SiLU)]
    assert not kernels.is_accelerated(model)

    assert kernels.accelerate(model) is model and kernels.is_accelerated(model)
    assert list(model.modules()) == modules  # the same module objects, in the same places
    assert dict(model.named_parameters()) == params  # the same Parameter objects (an optimiser keeps working)
    after = model.state_dict()
    assert list(after) == list(state) and all(after[k] is state[k] or after[k].data_ptr() == state[k].data_ptr()
                                              for k in state)
    n_blocks = sum(t is ConvBNAct for t in before_types)
    assert sum(type(m) is FusedConvBNAct for m in model.modules()) == n_blocks
    assert sum(type(m) is FusedSqueezeExcitation for m in model.modules()) == sum(
        t is SqueezeExcitation for t in before_types)
    assert sum(type(m) is DepthwiseConv2d for m in model.modules()) == ARCH.num_blocks
    assert not any(type(m) is nn.SiLU for m in model.modules())
    assert type(model.features[0][0]) is nn.Conv2d  # the stem conv is not depthwise: unchanged
    assert isinstance(model.features[0], ConvBNAct) and "out of place" in repr(model.features[0][2])
    assert _types(kernels.accelerate(model)) == _types(model)  # idempotent

    assert kernels.deaccelerate(model) is model and not kernels.is_accelerated(model)
    assert _types(model) == before_types and list(model.modules()) == modules
    assert [m.inplace for m in model.modules() if isinstance(m, nn.SiLU)] == flags


def test_optimiser_hooks_and_checkpoints_carry_across():
    torch.manual_seed(1)
    stock = build_model(ARCH, num_classes=10).to(memory_format=CL)
    for m in stock.modules():
        if hasattr(m, "p"):
            m.p = 0.0  # no random draws: both runs compute the same function
    fast = copy.deepcopy(stock)
    before = copy.deepcopy(stock.state_dict())
    opt = torch.optim.SGD(fast.parameters(), lr=0.01, momentum=0.9)  # built BEFORE accelerate
    seen: list[str] = []
    fast.features[-1].register_forward_hook(lambda mod, i, o: seen.append(type(mod).__name__))
    kernels.accelerate(fast)
    x, y = torch.randn(8, 3, 32, 32).contiguous(memory_format=CL), torch.arange(8) % 10
    # (small steps on a tiny batch: at lr 0.1 float noise already grows to 1e-4 in two steps)
    for net, o in ((fast, opt), (stock, torch.optim.SGD(stock.parameters(), lr=0.01, momentum=0.9))):
        for _ in range(2):
            o.zero_grad()
            F.cross_entropy(net(x), y).backward()
            o.step()
    assert seen == ["FusedConvBNAct"] * 2  # hooks on an accelerated module still fire
    changed = 0
    # Same training within float noise.  Biases of BNs that feed a BN have a true gradient of 0, so they hold
    # only noise: hence an absolute tolerance on the scale of the weights.
    scale = max(float(p.detach().abs().max()) for p in stock.parameters())
    for (name, a), b, c in zip(fast.state_dict().items(), stock.state_dict().values(), before.values()):
        if a.is_floating_point():
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4 * scale, msg=name)
        changed += not torch.equal(a, c)
    assert changed > len(before) / 2  # the optimiser built before accelerate did move the weights
    restored = build_model(ARCH, num_classes=10)
    restored.load_state_dict(fast.state_dict())  # an accelerated model's checkpoint loads into a stock one
    kernels.accelerate(build_model(ARCH, num_classes=10)).load_state_dict(stock.state_dict())  # and back


def test_only_the_builders_blocks_are_touched():
    plain = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.SiLU())
    se = SqueezeExcitation(8, 2)
    model = nn.Sequential(plain, ConvBNAct(8, 8, 3, groups=8), se)
    kernels.accelerate(model)
    assert [type(m) for m in plain] == [nn.Conv2d, nn.BatchNorm2d, nn.SiLU]  # not a ConvBNAct: left alone
    assert type(model[1]) is FusedConvBNAct and type(model[1][0]) is DepthwiseConv2d
    assert type(model[1][2]) is OutOfPlaceSiLU and model[1][2].inplace  # flag kept: deaccelerate needs nothing
    assert type(se) is FusedSqueezeExcitation and type(se.activation) is OutOfPlaceSiLU
