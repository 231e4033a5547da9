"""Proxy options: stratified subsets, validation held out from train, resize/pad, channels, caching, config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas_harness.data import ProxyConfig, clear_cache, find_fashion_mnist, load_fashion_mnist, load_proxy
from nas_harness.errors import ConfigError

needs_fmnist = pytest.mark.skipif(find_fashion_mnist() is None, reason="Fashion-MNIST not installed")


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x}


@needs_fmnist
def test_stratified_subset_and_disjoint_validation():
    d = load_proxy(ProxyConfig(train_subset=1000, val_size=0.1, resolution=28, channels=1, seed=1))
    assert torch.bincount(d.train_y).tolist() == [100] * 10
    assert torch.bincount(d.val_y).tolist() == [10] * 10
    assert d.train_x.dtype == torch.uint8 and d.train_x.shape == (1000, 1, 28, 28)
    assert len(d.test_y) == 10000  # the test set is untouched
    raw = load_fashion_mnist()
    train_rows = _rows(torch.from_numpy(raw.train_x))
    assert _rows(d.val_x) <= train_rows  # validation comes from the training file ...
    assert not (_rows(d.val_x) & _rows(d.train_x))  # ... disjoint from the training subset
    assert not (_rows(d.val_x) & _rows(torch.from_numpy(raw.test_x)))  # ... never from the test set


@needs_fmnist
def test_seeding_and_cache():
    a = load_proxy(ProxyConfig(per_class=20, val_size=50, seed=0))
    assert load_proxy(ProxyConfig(per_class=20, val_size=50, seed=0)) is a  # in-process cache
    clear_cache()
    b = load_proxy({"per_class": 20, "val_size": 50, "seed": 0})
    assert b is not a and torch.equal(a.train_x, b.train_x) and a.fingerprint() == b.fingerprint()
    c = load_proxy(ProxyConfig(per_class=20, val_size=50, seed=1))
    assert not torch.equal(a.train_x, c.train_x) and a.fingerprint() != c.fingerprint()
    assert torch.bincount(a.train_y).tolist() == [20] * 10 and len(a.val_y) == 50


@needs_fmnist
def test_pad_resize_channels_and_normalisation_stats():
    raw = load_fashion_mnist()
    padded = load_proxy(ProxyConfig(train_subset=100, val_size=10, resolution=32, channels=3))
    assert padded.train_x.shape == (100, 3, 32, 32) and padded.in_channels == 3
    # 28 -> 32 pads with zeros and keeps the pixels exact; the three channels are identical.
    assert padded.train_x[:, :, :2].sum() == 0 and padded.train_x[:, :, -2:].sum() == 0
    assert torch.equal(padded.train_x[:, 0], padded.train_x[:, 2])
    inner = padded.train_x[:, 0, 2:30, 2:30].numpy()
    raw_rows = {r.tobytes() for r in raw.train_x[:, 0]}
    assert all(img.tobytes() in raw_rows for img in inner)
    small = load_proxy(ProxyConfig(train_subset=100, val_size=10, resolution=16, channels=1))
    assert small.train_x.shape == (100, 1, 16, 16)
    x = padded.train_x.double() / 255
    assert padded.mean[0] == pytest.approx(float(x[:, 0].mean()), rel=1e-6)
    assert padded.std[0] == pytest.approx(float(x[:, 0].std()), rel=1e-3)
    off = load_proxy(ProxyConfig(train_subset=100, val_size=10, normalize=False))
    assert off.mean == (0.0, 0.0, 0.0) and off.std == (1.0, 1.0, 1.0)


def test_synthetic_proxy_is_labelled():
    d = load_proxy(ProxyConfig(dataset="synthetic", resolution=16))
    assert d.synthetic and "SYNTHETIC" in d.summary() and d.train_x.shape[1:] == (3, 16, 16)
    assert ProxyConfig().dataset == "fashion_mnist"  # never the default


@pytest.mark.parametrize(
    ("d", "field"),
    [({"resolution": 4}, "data.resolution"), ({"channels": 2}, "data.channels"), ({"dataset": "mnist"}, "data.dataset"),
     ({"val_size": 1.5}, "data.val_size"), ({"train_subset": 0}, "data.train_subset"), ({"colour": 1}, "data.colour"),
     ({"train_subset": 10, "per_class": 1}, "mutually exclusive"), ({"dataset": "cifar10"}, "data.root")],
)
def test_config_errors_name_the_field(d, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        ProxyConfig.from_dict(d)


def test_config_round_trip_and_too_large_subset():
    cfg = ProxyConfig(train_subset=123, val_size=7, resolution=24, channels=1, seed=5)
    assert ProxyConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="only"):
        load_proxy(ProxyConfig(dataset="synthetic", train_subset=10_000))
    assert np.isfinite(load_proxy(ProxyConfig(dataset="synthetic")).mean).all()
