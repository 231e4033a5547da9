"""The weight-sharing supernet over a :class:`~nas_harness.space.SearchSpace`, and subnet extraction.

One network holds every arch of the space (Once-for-All's elastic kernel/expansion/width/depth, Cai et al.,
ICLR 2020; SPOS's single-path forward, Guo et al., ECCV 2020):

- per stage, ``max(repeats)`` blocks; an arch with ``r`` repeats uses the *first* ``r`` blocks of the stage;
- each block holds the largest kernel, the largest expansion and the largest channel counts over the space;
  a smaller kernel uses the *centre* ``k x k`` of the largest depthwise kernel, a smaller expansion or width
  uses the *leading* channels of every weight and BatchNorm (running statistics included);
- SE on/off per stage (the SE weights are the leading ``squeeze x mid`` block of the largest), and the
  residual skip by the same rule as :class:`~nas_harness.model.MBConv` (``skip and stride 1 and cin == cout``).

Parameters live in stock PyTorch modules named like :mod:`nas_harness.model`'s; :meth:`Supernet.forward`
runs the active arch functionally on slices of them (gradients flow into the shared weights), and
:func:`subnet_state_dict` cuts the same slices out as a state dict that ``build_model(arch)`` loads with
``strict=True``.  Both paths call the same PyTorch ops on the same values, so the outputs agree (the tests
check ``torch.equal`` and fall back to float32 tolerance only if a kernel picks another algorithm).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nas_harness.arch import Arch, Stage, expanded_channels, make_divisible, se_squeeze_channels
from nas_harness.errors import ConfigError
from nas_harness.model import ConvBNAct, SqueezeExcitation, act_factory, init_weights, norm_factory
from nas_harness.space import SearchSpace

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class _BlockShape:
    """The largest shapes one supernet block must hold (over every arch of the space)."""

    cin: int
    cout: int
    mid: int
    squeeze: int
    kernel: int
    stride: int
    expands: bool  # some arch of the space has a 1x1 expansion here (mid != cin)
    has_se: bool


def _stage_channels(space: SearchSpace) -> list[list[int]]:
    return [sorted({make_divisible(b.channels * w) for w in sc.widths}) for b, sc in zip(space.base.stages,
                                                                                        space.stages)]


def _shapes(space: SearchSpace) -> list[list[_BlockShape]]:
    chans = _stage_channels(space)
    out: list[list[_BlockShape]] = []
    prev = [space.base.stem_channels]
    for i, (b, sc) in enumerate(zip(space.base.stages, space.stages)):
        blocks = []
        for j in range(max(sc.repeats)):
            cins = prev if j == 0 else chans[i]
            mids = [expanded_channels(c, e) for c in cins for e in sc.expands]
            blocks.append(_BlockShape(cin=max(cins), cout=max(chans[i]), mid=max(max(mids), max(cins)),
                                      squeeze=max(se_squeeze_channels(c, space.se_ratio) for c in cins),
                                      kernel=max(sc.kernels), stride=b.stride if j == 0 else 1,
                                      expands=any(expanded_channels(c, e) != c for c in cins for e in sc.expands),
                                      has_se=True in sc.se))
        out.append(blocks)
        prev = chans[i]
    return out


class SuperBlock(nn.Module):
    """One MBConv position of a stage at its largest shape: ``expand`` (1x1 conv-BN-act, if any arch expands),
    ``dw`` (depthwise kxk conv-BN-act), ``se`` (if any arch has SE) and ``project`` (1x1 conv-BN)."""

    def __init__(self, shape: _BlockShape, arch: Arch) -> None:
        super().__init__()
        norm, act = norm_factory(arch), act_factory(arch.act)
        self.shape = shape
        self.expand = ConvBNAct(shape.cin, shape.mid, 1, norm_layer=norm, act_layer=act) if shape.expands else None
        self.dw = ConvBNAct(shape.mid, shape.mid, shape.kernel, shape.stride, groups=shape.mid, norm_layer=norm,
                            act_layer=act)
        self.se = SqueezeExcitation(shape.mid, shape.squeeze, act_layer=act) if shape.has_se else None
        self.project = ConvBNAct(shape.mid, shape.cout, 1, norm_layer=norm, act_layer=None)
        self.act = act()


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, c: int, training: bool) -> torch.Tensor:
    # Sliced running statistics are views: in training mode F.batch_norm updates the leading channels in place.
    return F.batch_norm(x, bn.running_mean[:c], bn.running_var[:c], bn.weight[:c], bn.bias[:c],
                        training, bn.momentum if bn.momentum is not None else 0.0, bn.eps)


def _drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    noise = torch.empty((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device).bernoulli_(1.0 - p)
    return x * noise.div_(1.0 - p)


class Supernet(nn.Module):
    """Every arch of ``space`` in one network (``features`` / ``avgpool`` / ``classifier`` as in
    :class:`~nas_harness.model.EfficientNet`); ``forward(x, arch)`` runs the active ``arch`` (a member of the
    space) on ``x`` of shape ``(N, in_channels, H, W)`` and returns logits ``(N, num_classes)``."""

    def __init__(self, space: SearchSpace, num_classes: int, in_channels: int = 3,
                 stem_stride: int | None = None, zero_init_residual: bool = True, sample_skip: bool = False) -> None:
        super().__init__()
        base = space.base
        self.space = space
        self.sample_skip = sample_skip  # the residual skip is on/off per stage (where the base has it)
        self.num_classes, self.in_channels = num_classes, in_channels
        self.stem_stride = base.stem_stride if stem_stride is None else stem_stride
        norm, act = norm_factory(base), act_factory(base.act)
        layers: list[nn.Module] = [ConvBNAct(in_channels, base.stem_channels, 3, self.stem_stride, norm_layer=norm,
                                             act_layer=act)]
        self.shapes = _shapes(space)
        for blocks in self.shapes:
            layers.append(nn.ModuleList(SuperBlock(s, base) for s in blocks))
        last = self.shapes[-1][-1].cout
        layers.append(ConvBNAct(last, base.head_channels, 1, norm_layer=norm, act_layer=act))
        self.features = nn.ModuleList(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(base.dropout), nn.Linear(base.head_channels, num_classes))
        self.act = act()
        init_weights(self)  # the largest net's initialisation (torchvision's, as build_model)
        if zero_init_residual:  # blocks residual in every subnet start as the identity (as the trainer does);
            # a stage's first block is left alone: it is not residual in the subnets that change the width there
            for st, blocks in zip(base.stages, self.features[1:-1]):
                for blk in list(blocks)[1:]:
                    if st.skip:
                        nn.init.zeros_(blk.project[1].weight)

    def check(self, arch: Arch) -> None:
        """ConfigError unless ``arch`` is a subnet (:func:`why_not_subnet`)."""
        reason = why_not_subnet(self.space, arch, self.sample_skip)
        if reason is not None:
            raise ConfigError(f"arch {arch} is not in the supernet's search space: {reason}")

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        training = self.training
        stem = self.features[0]
        x = stem(x)
        cin = self.space.base.stem_channels
        total, block_id = arch.num_blocks, 0
        for st, blocks in zip(arch.stages, self.features[1:-1]):
            for j in range(st.repeats):
                x = self._block(x, blocks[j], st, cin, training, arch.drop_path * block_id / total)
                cin = st.channels
                block_id += 1
        head = self.features[-1]
        x = head[2](_bn(F.conv2d(x, head[0].weight[:, :cin]), head[1], head[1].num_features, training))
        x = torch.flatten(self.avgpool(x), 1)
        x = F.dropout(x, arch.dropout, training)
        return self.classifier[1](x)

    def _block(self, x: torch.Tensor, blk: SuperBlock, st: Stage, cin: int, training: bool,
               drop_path: float) -> torch.Tensor:
        shape = blk.shape
        cout, mid = st.channels, expanded_channels(cin, st.expand)
        stride = shape.stride
        inp = x
        if mid != cin:
            e = blk.expand
            x = e[2](_bn(F.conv2d(x, e[0].weight[:mid, :cin]), e[1], mid, training))
        k, off = st.kernel, (shape.kernel - st.kernel) // 2
        w = blk.dw[0].weight[:mid, :, off:off + k, off:off + k]
        x = blk.dw[2](_bn(F.conv2d(x, w, None, stride, (k - 1) // 2, 1, mid), blk.dw[1], mid, training))
        if st.se is not None:
            se, sq = blk.se, se_squeeze_channels(cin, st.se)
            s = se.avgpool(x)
            s = se.activation(F.conv2d(s, se.fc1.weight[:sq, :mid], se.fc1.bias[:sq]))
            s = se.scale_activation(F.conv2d(s, se.fc2.weight[:mid, :sq], se.fc2.bias[:mid]))
            x = s * x
        p = blk.project
        x = _bn(F.conv2d(x, p[0].weight[:cout, :mid]), p[1], cout, training)
        if st.skip and stride == 1 and cin == cout:
            x = _drop_path(x, drop_path, training) + inp
        return x


def why_not_subnet(space: SearchSpace, arch: Arch, sample_skip: bool = False) -> str | None:
    """Why ``arch`` is not a subnet of the supernet over ``space`` (None when it is): a member of the space, or
    with ``sample_skip`` (the supernet trained every stage with and without its residual skip) a member of the
    space once the skips the base arch has are restored."""
    if sample_skip and isinstance(arch, Arch) and len(arch.stages) == len(space.base.stages):
        for i, (st, base_st) in enumerate(zip(arch.stages, space.base.stages), start=1):
            if st.skip and not base_st.skip:
                return f"stage {i} has a residual skip the base arch (and so the supernet) does not"
        arch = arch.replace(stages=tuple(dataclasses.replace(st, skip=b.skip)
                                         for st, b in zip(arch.stages, space.base.stages)))
    try:
        space.params_of(arch)
    except ConfigError as exc:
        reason = str(exc).removeprefix("arch is not in the search space: ")
        if not sample_skip and "skip differ" in reason:
            reason += " (the supernet was trained with the base's skips only: sample_skip = true trains both)"
        return reason
    return None


def with_sampled_skips(arch: Arch, base: Arch, rng: random.Random) -> Arch:
    """``arch`` with the residual skip of each stage whose base has one drawn on/off (probability 1/2)."""
    return arch.replace(stages=tuple(dataclasses.replace(st, skip=rng.random() < 0.5) if b.skip else st
                                     for st, b in zip(arch.stages, base.stages)))


def largest_arch(space: SearchSpace) -> Arch:
    """The space's largest member: largest kernel, expansion, repeats and width per stage, SE on if allowed."""
    return space.arch_from_params(_extreme(space, True))


def smallest_arch(space: SearchSpace) -> Arch:
    """The space's smallest member: smallest kernel, expansion, repeats and width per stage, SE off if allowed."""
    return space.arch_from_params(_extreme(space, False))


def _extreme(space: SearchSpace, largest: bool) -> dict:
    params = {}
    for name, choices in space.param_grid().items():
        if name.endswith("_se"):
            params[name] = (True in choices) if largest else (False not in choices)
        else:
            params[name] = max(choices) if largest else min(choices)
    return params


def _copy(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone(memory_format=torch.contiguous_format)


def _conv_bn(sd: dict[str, torch.Tensor], prefix: str, cba: nn.Module, weight: torch.Tensor, c: int) -> None:
    sd[f"{prefix}.0.weight"] = _copy(weight)
    bn = cba[1]
    for key in _BN_KEYS:
        sd[f"{prefix}.1.{key}"] = _copy(getattr(bn, key)[:c])
    sd[f"{prefix}.1.num_batches_tracked"] = _copy(bn.num_batches_tracked)


def subnet_state_dict(net: Supernet, arch: Arch) -> dict[str, torch.Tensor]:
    """The inherited weights of ``arch`` (a member of ``net.space``) as a state dict for
    ``build_model(arch, net.num_classes, net.in_channels, net.stem_stride)`` (``strict=True``): the same slices
    :meth:`Supernet.forward` uses, copied (contiguous, CPU tensors of the supernet's dtype)."""
    net.check(arch)
    sd: dict[str, torch.Tensor] = {}
    stem = net.features[0]
    _conv_bn(sd, "features.0", stem, stem[0].weight, stem[1].num_features)
    cin = net.space.base.stem_channels
    for i, (st, blocks) in enumerate(zip(arch.stages, net.features[1:-1]), start=1):
        for j in range(st.repeats):
            blk, cout = blocks[j], st.channels
            mid = expanded_channels(cin, st.expand)
            pre, idx = f"features.{i}.{j}.block", 0
            if mid != cin:
                _conv_bn(sd, f"{pre}.{idx}", blk.expand, blk.expand[0].weight[:mid, :cin], mid)
                idx += 1
            k, off = st.kernel, (blk.shape.kernel - st.kernel) // 2
            _conv_bn(sd, f"{pre}.{idx}", blk.dw, blk.dw[0].weight[:mid, :, off:off + k, off:off + k], mid)
            idx += 1
            if st.se is not None:
                sq, se = se_squeeze_channels(cin, st.se), blk.se
                sd[f"{pre}.{idx}.fc1.weight"] = _copy(se.fc1.weight[:sq, :mid])
                sd[f"{pre}.{idx}.fc1.bias"] = _copy(se.fc1.bias[:sq])
                sd[f"{pre}.{idx}.fc2.weight"] = _copy(se.fc2.weight[:mid, :sq])
                sd[f"{pre}.{idx}.fc2.bias"] = _copy(se.fc2.bias[:mid])
                idx += 1
            _conv_bn(sd, f"{pre}.{idx}", blk.project, blk.project[0].weight[:cout, :mid], cout)
            cin = cout
    head = net.features[-1]
    n = len(arch.stages) + 1
    _conv_bn(sd, f"features.{n}", head, head[0].weight[:, :cin], head[1].num_features)
    sd["classifier.1.weight"] = _copy(net.classifier[1].weight)
    sd["classifier.1.bias"] = _copy(net.classifier[1].bias)
    return sd
