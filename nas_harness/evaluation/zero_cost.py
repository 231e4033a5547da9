"""Training-free ("zero-cost") predictors of an architecture's trained accuracy, computed in about a second.

``nas-harness fidelity`` judges them on the same archs as the trained proxy, next to the two simplest
predictors of all, the parameter count and the MAC count.  Published re-measurements found #params about as
good as most zero-cost proxies on ImageNet-sized CNN spaces (e.g. Ning et al., "Evaluating Efficient
Performance Estimators of Neural Architectures", NeurIPS 2021; White et al., "A Deeper Look at Zero-Cost
Proxies for Lightweight NAS", ICLR Blog Track 2022; Krishnakumar et al., "NAS-Bench-Suite-Zero", NeurIPS 2022
Datasets and Benchmarks); the fidelity report lets a user check that on their own space.

Scores (higher = predicted better), each on a freshly initialised network (seeded) built as it is trained
(:func:`nas_harness.model.build_model`, stock PyTorch modules, so every module's own ``forward`` and hooks
run):

- :func:`synflow` -- Tanaka, Kunin, Yamins & Ganguli, "Pruning neural networks without any data by
  iteratively conserving synaptic flow", NeurIPS 2020; as a NAS proxy: Abdelfattah, Mehrotra, Dudziak &
  Lane, "Zero-Cost Proxies for Lightweight NAS", ICLR 2021.  All parameters replaced by their absolute value,
  an all-ones input in float64, ``R = sum(output)``, score = sum over conv/linear weights of
  ``|theta * dR/dtheta|``.  BatchNorm layers are bypassed (Abdelfattah et al.'s ``bn=False`` variant: with
  BN a batch of one identical input normalises to zero).  For a chain of L linear layers the score is
  ``L * R`` (each layer's term equals R by homogeneity), which the tests check.  On SiLU/SE networks the
  activations run as built, as in the usual implementations; the exact path-norm reading holds for ReLU.
- :func:`naswot` -- Mellor, Turner, Storkey & Crowley, "Neural Architecture Search without Training", ICML
  2021.  Each input of a batch gets a binary code: which activation units are active (pre-activation > 0, the
  ReLU gate; for SiLU/hard-swish/GELU the same sign test).  ``K[i, j]`` = number of units where inputs i and j
  agree (N_A minus the Hamming distance); score = ``log|det K|`` (:func:`naswot_from_codes`).
- :func:`grad_norm` -- Abdelfattah et al. 2021: sum over conv/linear layers of the L2 norm of the gradient of
  the cross-entropy loss on one training batch at initialisation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PREDICTORS", "TRAINING_FREE", "grad_norm", "naswot", "naswot_from_codes", "synflow", "zero_cost_scores"]

#: Every cheap predictor the fidelity report judges (the first two come from the analytic counter).
PREDICTORS = ("params", "macs", "synflow", "naswot", "grad_norm")
TRAINING_FREE = ("synflow", "naswot", "grad_norm")
_ACTIVATIONS = (nn.ReLU, nn.SiLU, nn.Hardswish, nn.GELU, nn.ReLU6)


def _weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight is not None]


def synflow(model: nn.Module, input_shape: Sequence[int]) -> float:
    """SynFlow score of ``model`` for inputs of shape ``input_shape`` (without the batch dimension); the model
    itself is not changed (a float64 copy is scored)."""
    net = copy.deepcopy(model).double().eval()
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    out = net(torch.ones((1, *input_shape), dtype=torch.float64))
    out.sum().backward()
    total = 0.0
    with torch.no_grad():
        for w in _weights(net):
            if w.grad is not None:
                total += float((w * w.grad).abs().sum())
    return total


def naswot_from_codes(codes: torch.Tensor) -> float:
    """``log|det K|`` with ``K[i, j]`` = number of positions where binary codes i and j agree."""
    c = codes.to(torch.float64)
    k = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = torch.linalg.slogdet(k)
    return float(logdet) if float(sign) != 0 else -math.inf


def naswot(model: nn.Module, x: torch.Tensor) -> float:
    """NASWOT score of ``model`` on the batch ``x`` (codes from every activation module's input sign)."""
    net = copy.deepcopy(model).train()
    codes: list[torch.Tensor] = []

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        codes.append(inputs[0].detach().reshape(inputs[0].shape[0], -1) > 0)

    handles = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, _ACTIVATIONS)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    if not codes:
        raise ValueError("naswot: the model has no activation module to read codes from")
    return naswot_from_codes(torch.cat(codes, dim=1))


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum over conv/linear layers of ``||d loss / d W||_2`` for the cross-entropy loss on ``(x, y)``."""
    net = copy.deepcopy(model).train()
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    return float(sum(float(w.grad.norm()) for w in _weights(net) if w.grad is not None))


def _batch(data: Any, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training images of the proxy task, normalised as the trainer does, and their labels (seeded)."""
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(len(data.train_y), generator=g)[: min(n, len(data.train_y))]
    x = data.train_x[idx].float() / 255.0
    mean = torch.tensor(data.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(data.std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std, data.train_y[idx].long()


def zero_cost_scores(arch: Any, data: Any, *, stem_stride: int | None = None, seed: int = 0,
                     batch_size: int = 64, macs: float | None = None, params: float | None = None,
                     threads: int | None = 1) -> dict[str, float]:
    """Every predictor of :data:`PREDICTORS` for ``arch`` on the proxy task ``data`` (a loaded
    :class:`~nas_harness.data.ProxyData`): ``params``/``macs`` as given (the deployed network's counts), the
    training-free scores on a network initialised with ``seed`` and a seeded training batch, computed with
    ``threads`` CPU threads (None: PyTorch's setting)."""
    from nas_harness.arch import parse_arch
    from nas_harness.model import build_model

    a = parse_arch(arch) if isinstance(arch, str) else arch
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        torch.manual_seed(int(seed))
        model = build_model(a, num_classes=data.num_classes, in_channels=data.in_channels, stem_stride=stem_stride)
        x, y = _batch(data, batch_size, seed)
        return {
            "params": float(params) if params is not None else math.nan,
            "macs": float(macs) if macs is not None else math.nan,
            "synflow": synflow(model, tuple(x.shape[1:])),
            "naswot": naswot(model, x),
            "grad_norm": grad_norm(model, x, y),
        }
    finally:
        torch.set_num_threads(before)
