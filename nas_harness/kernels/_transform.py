"""``accelerate`` / ``deaccelerate``: attach the CPU kernels to a built model by changing module classes.

Each fast module class is a subclass of the stock one with no state of its own, only a different
``forward``; attaching it sets the module's ``__class__`` (and detaching sets it back).  So the module
objects, their parameters and buffers, their names in ``state_dict``, forward hooks registered on them,
and any reference held elsewhere (an optimiser's parameter groups, a checkpoint's keys) are the same
objects before, during and after.  What is swapped:

================================================  ======================================================
stock (``nas_harness.model``, ``torch.nn``)        fast
================================================  ======================================================
``ConvBNAct``                                      :class:`FusedConvBNAct`: BN + activation as one C
                                                   kernel; a 1×1 convolution on a map of at most 4×4 as
                                                   ``F.linear`` on the channels_last rows
``SqueezeExcitation``                              :class:`FusedSqueezeExcitation`: two-pass backward
depthwise ``nn.Conv2d`` (in a ``ConvBNAct``)       :class:`~._depthwise.DepthwiseConv2d`: own weight
                                                   gradient
``nn.SiLU`` / ``nn.Hardswish`` (in both blocks)    out-of-place versions
================================================  ======================================================

The fast classes check their input on every call (channels_last float32 on CPU, no autocast, not being
traced or compiled) and otherwise compute exactly what the stock class does, with the stock ops: that is
what keeps an accelerated model correct when it is evaluated on a GPU, traced by fvcore or compiled.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas_harness.kernels._depthwise import DepthwiseConv2d
from nas_harness.kernels._fused import (
    OutOfPlaceHardswish,
    OutOfPlaceSiLU,
    bn_act,
    bn_act_fusable,
    cpu_fast_path,
    se_gate,
)
from nas_harness.model import ConvBNAct, SqueezeExcitation

# 1x1 convolutions on maps of at most this many positions run as one matmul on CPU (see FusedConvBNAct).
_PW_MAX_POSITIONS = 16


class FusedConvBNAct(ConvBNAct):
    """``ConvBNAct`` whose BN and activation run as one fused CPU kernel where
    :func:`~._fused.bn_act_fusable` allows (channels_last float32 on CPU), otherwise as the stock modules.

    On the fused path the BN and activation modules' own ``forward`` (and so their forward hooks) does not
    run: :func:`deaccelerate` (or ``NAS_HARNESS_NATIVE=0``) where hooks must see them.  A 1×1 convolution on
    a map of at most 4×4 positions runs as ``F.linear`` on the channels_last rows there: oneDNN's
    convolution backward costs about twice the two matmuls at those shapes (measured 6% of a B0-w0.5 step at
    32 px); on larger maps oneDNN is as fast or faster.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self[0]
        if (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1 and conv.bias is None
                and conv.padding == (0, 0) and cpu_fast_path(x) and x.shape[-1] * x.shape[-2] <= _PW_MAX_POSITIONS):
            x = F.linear(x.permute(0, 2, 3, 1), conv.weight.flatten(1)).permute(0, 3, 1, 2)  # stays channels_last
        else:
            x = conv(x)
        bn, act = self[1], (self[2] if len(self) > 2 else None)
        if bn_act_fusable(x, bn, act):
            return bn_act(x, bn, act)
        x = bn(x)
        return x if act is None else act(x)


class FusedSqueezeExcitation(SqueezeExcitation):
    """``SqueezeExcitation`` that trains through :func:`~._fused.se_gate` (a two-pass backward) on CPU where
    it applies, and computes the stock way elsewhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = se_gate(x, self.fc1, self.fc2, self.activation)
        return super().forward(x) if out is None else out


# fast class -> the stock class it replaces (what deaccelerate restores)
_STOCK: dict[type[nn.Module], type[nn.Module]] = {
    FusedConvBNAct: ConvBNAct,
    FusedSqueezeExcitation: SqueezeExcitation,
    DepthwiseConv2d: nn.Conv2d,
    OutOfPlaceSiLU: nn.SiLU,
    OutOfPlaceHardswish: nn.Hardswish,
}
_OUT_OF_PLACE: dict[type[nn.Module], type[nn.Module]] = {nn.SiLU: OutOfPlaceSiLU, nn.Hardswish: OutOfPlaceHardswish}


def _is_depthwise(conv: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels
            and conv.dilation == (1, 1) and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple))


def _swap(module: nn.Module, cls: type[nn.Module]) -> None:
    module.__class__ = cls


def accelerate(model: nn.Module) -> nn.Module:
    """Attach the CPU training kernels to ``model`` in place and return it.

    Applies to the blocks of :func:`nas_harness.model.build_model` wherever they sit in ``model`` (exact
    classes ``ConvBNAct`` and ``SqueezeExcitation``); other modules are left alone.  Idempotent; undone by
    :func:`deaccelerate`.  Parameters, buffers and ``state_dict`` keys do not change, so an optimiser built
    before or after, and checkpoints written either way, work with both.  Where the C kernels are
    unavailable (see :func:`~nas_harness.kernels.available`) the fast classes compute with the stock ops
    (the depthwise tap-matrix gradient, the small-map matmul and the out-of-place activations still apply).
    """
    for mod in list(model.modules()):
        if type(mod) is ConvBNAct:
            if _is_depthwise(mod[0]):
                _swap(mod[0], DepthwiseConv2d)
            if len(mod) > 2 and type(mod[2]) in _OUT_OF_PLACE:
                _swap(mod[2], _OUT_OF_PLACE[type(mod[2])])
            _swap(mod, FusedConvBNAct)
        elif type(mod) is SqueezeExcitation:
            if type(mod.activation) in _OUT_OF_PLACE:
                _swap(mod.activation, _OUT_OF_PLACE[type(mod.activation)])
            _swap(mod, FusedSqueezeExcitation)
    return model


def deaccelerate(model: nn.Module) -> nn.Module:
    """Undo :func:`accelerate` in place: every fast module gets its stock class back; returns ``model``.

    The result is the module tree :func:`~nas_harness.model.build_model` returns (torchvision's), weights
    and running statistics as they are now.
    """
    for mod in model.modules():
        stock = _STOCK.get(type(mod))
        if stock is not None:
            _swap(mod, stock)
    return model


def is_accelerated(model: nn.Module) -> bool:
    """Whether any module of ``model`` has a fast class attached."""
    return any(type(m) in _STOCK for m in model.modules())
