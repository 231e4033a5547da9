"""Training with the CPU kernels is training the same model: gradients as exact as the stock ops', and final
accuracies from the same distribution over paired seeds.

Background (issue #14, item 2).  B0 w0.25 d0.5 at 16 px, 2,000 Fashion-MNIST images, 2 epochs of SGD at
lr 0.1, batch 64, gave a mean validation accuracy of 0.608 with the kernels and 0.662 without over 6 paired
seeds.  Measured since (threads = 1, deterministic):

- Over 40 paired seeds the difference is +0.004 (standard error 0.008; 17 of 40 lower), and the same stock
  model with its initial weights multiplied by (1 + 1e-7 N(0, 1)) differs from the unperturbed one by
  -0.001 with the same spread (paired SD 0.051 vs 0.053).  Pairing buys nothing: the paired SD is sqrt(2)
  times the per-arm SD (0.036-0.044).
- Per-step losses of one seed: a 1e-7 relative perturbation grows about tenfold per step (1e-6 at step 0,
  0.14 at step 5); the kernels' rounding differences (9e-6 at step 0) grow at the same rate.  After about
  8 of the 62 steps the two runs are different draws.
- The kernels' first-step gradient is *closer* to a float64 reference than the stock float32 ops'
  (relative error 4e-6 vs 1e-4; BN statistics are summed in double) and stays so on a trained model
  whose BN outputs reach |y| = 19.
So the gap was chaos, not bias.  One real, if tiny, bias did turn up and is fixed: the sigmoid's reciprocal
(three Newton steps) returned 1 - 2^-24 for 1, so SiLU(y) came out one ulp low above y ~ 17 and its
gradient high by y * 6e-8 (4e-4 relative at y ~ 6000; ``test_silu_is_exact_on_large_activations``).
"""

from __future__ import annotations

import copy
import statistics

import pytest
import torch
import torch.nn.functional as F

from nas_harness import kernels
from nas_harness.data import ProxyConfig, find_fashion_mnist, load_proxy
from nas_harness.model import build_model
from nas_harness.presets import efficientnet_b0
from nas_harness.scaling import scale_arch
from nas_harness.train import TrainConfig, train, zero_init_residual
from nas_harness.train.augment import BatchMaker

pytestmark = pytest.mark.usefixtures("native")
ARCH = scale_arch(efficientnet_b0(), width=0.25, depth=0.5)  # the model


@pytest.fixture(scope="module")
def data():
    if find_fashion_mnist() is None:
        return load_proxy(ProxyConfig(dataset="synthetic", resolution=16, channels=1))
    return load_proxy(ProxyConfig(train_subset=2000, val_size=500, resolution=16, channels=1))


def _grad_errors(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Relative error of the whole gradient vs float64, for the stock ops and the kernels."""
    model = copy.deepcopy(model).to(memory_format=torch.channels_last).train()
    for m in model.modules():  # no dropout / drop-path draws: all three compute the same function
        if isinstance(m, torch.nn.Dropout) or hasattr(m, "p"):
            m.p = 0.0
    ref = copy.deepcopy(model).double()
    F.cross_entropy(ref(x.double()), y, label_smoothing=0.1).backward()
    g_ref = torch.cat([p.grad.flatten() for p in ref.parameters()])
    out = {}
    for name, net in (("stock", copy.deepcopy(model)), ("kernels", kernels.accelerate(copy.deepcopy(model)))):
        F.cross_entropy(net(x), y, label_smoothing=0.1).backward()
        g = torch.cat([p.grad.double().flatten() for p in net.parameters()])
        out[name] = float((g - g_ref).norm() / g_ref.norm())
    return out


def test_gradients_are_at_least_as_exact_as_the_stock_ops(data):
    maker = BatchMaker(data.train_x, data.mean, data.std, torch.device("cpu"), True)
    torch.manual_seed(0)
    model = build_model(ARCH, num_classes=10, in_channels=1, stem_stride=1)
    zero_init_residual(model)
    x, y = maker.train_batch(torch.arange(64)), data.train_y[:64]
    at_init = _grad_errors(model, x, y)
    # Measured 4e-6 (kernels) vs 6e-5..1.3e-4 (stock) over 6 seeds on Fashion-MNIST.
    assert at_init["kernels"] < max(2 * at_init["stock"], 1e-5), at_init
    # After training at lr 0.1 (large BN outputs, the regime of the issue): measured 1.3e-6 vs 6e-6.
    train(model, data, TrainConfig(steps=40, batch_size=64, lr=0.1, threads=1, cpu_kernels="off"))
    trained = _grad_errors(model, x, y)
    assert trained["kernels"] < max(2 * trained["stock"], 1e-5), trained


@pytest.mark.slow
@pytest.mark.skipif(find_fashion_mnist() is None, reason="Fashion-MNIST not installed")
def test_final_accuracy_distribution_matches_stock_over_paired_seeds(data):
    """The issue's regime, 8 paired seeds (about 45 s of CPU).

    Tolerance: paired differences of final validation accuracy have an SD of 0.05 here (measured over 40
    seeds, and the same for a 1e-7 perturbation of the initial weights: chaos), so the mean of 8 has a
    standard error of 0.018; |mean| > 0.06 is a 3.3-sigma event without a bias (p ~ 0.001), while the gap
    first reported (-0.054) or any larger bias fails it with useful probability.  All 8 on one side would
    also flag a bias (sign test, p = 2/256).
    """
    diffs = []
    for seed in range(8):
        acc = {}
        for mode in ("auto", "off"):
            torch.manual_seed(seed)
            model = build_model(ARCH, num_classes=10, in_channels=1, stem_stride=1)
            res = train(model, data, TrainConfig(epochs=2, batch_size=64, lr=0.1, seed=seed, threads=1,
                                                 augment=("flip",), cpu_kernels=mode))
            assert res.cpu_kernels == ("on" if mode == "auto" else "off")
            acc[mode] = res.final_val_acc
        diffs.append(acc["auto"] - acc["off"])
    mean = statistics.mean(diffs)
    assert abs(mean) < 0.06, diffs
    nonzero = [d for d in diffs if d != 0]
    assert not (len(nonzero) == len(diffs) and (all(d > 0 for d in diffs) or all(d < 0 for d in diffs))), diffs
