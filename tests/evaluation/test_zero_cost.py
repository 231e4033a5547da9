"""Zero-cost predictors on networks small enough to check by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nas_harness.evaluation.zero_cost import PREDICTORS, grad_norm, naswot, naswot_from_codes, synflow


def test_synflow_of_a_scalar_chain_is_depth_times_the_product() -> None:
    # y = w3 w2 w1 x with x = 1: R = |w1 w2 w3|, and each weight's |w dR/dw| = R, so the score is 3R
    net = nn.Sequential(*(nn.Linear(1, 1, bias=False) for _ in range(3)))
    with torch.no_grad():
        for lin, w in zip(net, (0.5, -2.0, 3.0)):
            lin.weight.fill_(w)
    assert synflow(net, (1,)) == pytest.approx(3 * 0.5 * 2.0 * 3.0)
    assert net[1].weight.item() == -2.0  # the model itself is untouched


def test_synflow_of_a_matrix_chain_with_batchnorm_bypassed() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.BatchNorm1d(4), nn.Linear(4, 2, bias=False),
                        nn.Linear(2, 1, bias=False))
    w1, w2, w3 = (net[i].weight.detach().abs().double() for i in (0, 2, 3))
    r = float(w3 @ w2 @ w1 @ torch.ones(3, dtype=torch.float64))
    assert synflow(net, (3,)) == pytest.approx(3 * r, rel=1e-12)  # Euler: every layer contributes R


def test_naswot_from_codes_by_hand() -> None:
    # codes 101 and 111 agree in 2 of 3 positions: K = [[3, 2], [2, 3]], det 5
    assert naswot_from_codes(torch.tensor([[1, 0, 1], [1, 1, 1]])) == pytest.approx(math.log(5))
    # three codes over 2 units: 10, 01, 11 -> K = [[2,0,1],[0,2,1],[1,1,2]], det = 2*3 - 0 + 1*(0-2) = 4
    assert naswot_from_codes(torch.tensor([[1, 0], [0, 1], [1, 1]])) == pytest.approx(math.log(4))
    assert naswot_from_codes(torch.tensor([[1, 0], [1, 0]])) == -math.inf  # identical codes: singular K


def test_naswot_reads_the_activation_inputs() -> None:
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])  # codes 10, 01, 11 as above
    assert naswot(net, x) == pytest.approx(math.log(4))
    with pytest.raises(ValueError, match="no activation"):
        naswot(nn.Linear(2, 2), x)


def test_grad_norm_of_a_zero_linear_classifier() -> None:
    # logits 0 -> softmax 1/C; dL/dW = (p - e_y) x^T, whose norm is sqrt((C - 1) / C) * ||x||
    c = 4
    net = nn.Sequential(nn.Linear(3, c))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.zero_()
    x = torch.tensor([[1.0, 2.0, 2.0]])
    assert grad_norm(net, x, torch.tensor([1])) == pytest.approx(math.sqrt((c - 1) / c) * 3.0, rel=1e-6)


def test_scores_of_a_real_arch_are_finite_and_seeded() -> None:
    from nas_harness.data import ProxyConfig, load_proxy
    from nas_harness.evaluation.zero_cost import zero_cost_scores

    data = load_proxy(ProxyConfig(dataset="synthetic", train_subset=128, val_size=32, resolution=16, channels=3))
    arch = "stem_c8_s1,ds_r1_k3_s1_e1_c8_se0.25,ir_r2_k3_s2_e3_c16_se0.25,head_c32_do0_dp0_silu"
    a = zero_cost_scores(arch, data, stem_stride=1, seed=0, batch_size=16, macs=1e6, params=2e3)
    assert list(a) == list(PREDICTORS)
    assert all(math.isfinite(v) for v in a.values()) and a["macs"] == 1e6
    assert zero_cost_scores(arch, data, stem_stride=1, seed=0, batch_size=16, macs=1e6, params=2e3) == a
    assert zero_cost_scores(arch, data, stem_stride=1, seed=1, batch_size=16)["synflow"] != a["synflow"]
