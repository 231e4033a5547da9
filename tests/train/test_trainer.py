"""Proxy trainer: accuracy on real data, short-budget BN correctness, NaN/OOM paths, determinism,
callbacks, evaluation and configuration."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from nas_harness.data import ProxyConfig, find_fashion_mnist, load_proxy
from nas_harness.errors import ConfigError, NonFiniteLossError, TrialOutOfMemoryError
from nas_harness.train import (
    EpochReport,
    TrainConfig,
    evaluate,
    lr_factor,
    param_groups,
    recalibrate_bn,
    train,
    zero_init_residual,
)
from nas_harness.train.augment import BatchMaker

needs_fmnist = pytest.mark.skipif(find_fashion_mnist() is None, reason="Fashion-MNIST not installed")


def tiny_cnn(in_ch: int = 3, classes: int = 10, bn_momentum: float = 0.1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(in_ch, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16, momentum=bn_momentum), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32, momentum=bn_momentum),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, classes),
    )


@pytest.fixture(scope="module")
def synth():
    return load_proxy(ProxyConfig(dataset="synthetic", resolution=16))


@pytest.fixture(scope="module")
def fmnist_small():
    if find_fashion_mnist() is None:
        pytest.skip("Fashion-MNIST not installed")
    return load_proxy(ProxyConfig(train_subset=2000, val_size=500, resolution=16, channels=1))


FAST = {"batch_size": 64, "lr": 0.1, "threads": "auto"}


@needs_fmnist
@pytest.mark.slow
def test_short_run_on_real_data_with_project_model_is_far_above_chance(fmnist_small):
    model = project_model()
    reports: list[EpochReport] = []
    cfg = TrainConfig(epochs=2, augment=("flip",), **FAST)
    res = train(model, fmnist_small, cfg, on_epoch=reports.append)
    assert res.final_val_acc > 0.5, res  # chance is 0.1; measured ~0.7
    assert [r.epoch for r in reports] == [1, 2] and res.steps == 2 * (2000 // 64)
    assert res.images_per_s > 0 and res.peak_mem_bytes > 0 and res.device == "cpu"
    acc, loss = evaluate(model, fmnist_small.test_x[:1000], fmnist_small.test_y[:1000], TrainConfig())
    assert acc > 0.5 and abs(acc - res.final_val_acc) < 0.1 and loss < 2.0


def project_model(in_ch: int = 1) -> nn.Module:
    from nas_harness.model import build_model
    from nas_harness.presets import efficientnet_b0
    from nas_harness.scaling import scale_arch

    torch.manual_seed(0)
    return build_model(scale_arch(efficientnet_b0(), width=0.25, depth=0.5), num_classes=10, in_channels=in_ch,
                       stem_stride=1)


@needs_fmnist
@pytest.mark.slow
def test_short_budget_bn_statistics(fmnist_small):
    """TF-style BN momentum 0.01 leaves running stats near their initial values after 60 steps, so the
    stale-statistics accuracy is poor; re-estimating them on training batches fixes it."""
    model = project_model()
    cfg = TrainConfig(steps=60, bn_recalibrate=0, bn_momentum=0.01, augment=("flip",), **FAST)
    stale = train(model, fmnist_small, cfg).final_val_acc
    maker = BatchMaker(fmnist_small.train_x, fmnist_small.mean, fmnist_small.std, torch.device("cpu"), True)
    recalibrate_bn(model, maker, batches=4, batch_size=64)
    fixed, _ = evaluate(model, fmnist_small.val_x, fmnist_small.val_y)
    assert fixed > 0.5 and fixed > stale + 0.2, (stale, fixed)


def test_same_seed_same_result(synth):
    cfg = TrainConfig(epochs=2, seed=3, **FAST)
    a, b = tiny_cnn(), tiny_cnn()
    ra, rb = train(a, synth, cfg), train(b, synth, cfg)
    assert ra.history == [{**h, "elapsed_s": ra.history[i]["elapsed_s"]} for i, h in enumerate(rb.history)]
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    c = tiny_cnn()
    train(c, synth, TrainConfig(epochs=2, seed=4, **FAST))
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))


def test_learns_synthetic_and_steps_budget(synth):
    res = train(tiny_cnn(), synth, TrainConfig(steps=40, **FAST))
    assert res.steps == 40 and res.epochs_run == pytest.approx(40 / (len(synth.train_y) // 64))
    assert res.final_val_acc > 0.5


def test_nan_loss_raises_with_step(synth):
    with pytest.raises(NonFiniteLossError) as err:
        train(tiny_cnn(), synth, TrainConfig(epochs=2, **{**FAST, "lr": 1e10}))
    assert err.value.step >= 1


class _BlowUpAt(nn.Module):
    """Wraps a model and returns inf logits (or raises OOM) from the given forward call on."""

    def __init__(self, inner: nn.Module, at: int, oom: bool = False) -> None:
        super().__init__()
        self.inner, self.at, self.oom, self.calls = inner, at, oom, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.at:
                if self.oom:
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
                return out * float("inf")
        return out


def test_injected_inf_reports_exact_step(synth):
    with pytest.raises(NonFiniteLossError) as err:
        train(_BlowUpAt(tiny_cnn(), at=5), synth, TrainConfig(epochs=1, **FAST))
    assert err.value.step == 5 and str(err.value).startswith("non-finite loss")


def test_oom_becomes_trial_error_and_frees_gradients(synth):
    model = _BlowUpAt(tiny_cnn(), at=3, oom=True)
    with pytest.raises(TrialOutOfMemoryError) as err:
        train(model, synth, TrainConfig(epochs=1, **FAST))
    assert err.value.step == 2 and all(p.grad is None for p in model.parameters())


def test_callback_exception_propagates_after_cleanup(synth):
    class Prune(Exception):
        pass

    def on_epoch(r: EpochReport) -> None:
        assert 0 <= r.val_acc <= 1 and r.elapsed_s > 0
        raise Prune

    model = tiny_cnn()
    with pytest.raises(Prune):
        train(model, synth, TrainConfig(epochs=3, **FAST), on_epoch=on_epoch)
    assert all(p.grad is None for p in model.parameters())


def test_evaluate_needs_normalisation_for_untrained_models(synth):
    with pytest.raises(ConfigError, match="mean"):
        evaluate(tiny_cnn(), synth.test_x, synth.test_y)
    acc, loss = evaluate(tiny_cnn(), synth.test_x, synth.test_y, mean=synth.mean, std=synth.std)
    assert 0 <= acc <= 1 and loss > 0


def test_batch_maker_crop_flip_are_shifted_windows(synth):
    x = synth.train_x[:32]
    gen = torch.Generator().manual_seed(0)
    maker = BatchMaker(x, (0.0,) * 3, (1 / 255,) * 3, torch.device("cpu"), True, ("crop", "flip"), 2, gen)
    out = maker.train_batch(torch.arange(32))  # std 1/255, mean 0: values are raw pixel values
    assert out.is_contiguous(memory_format=torch.channels_last) and out.dtype == torch.float32
    padded = torch.nn.functional.pad(x.float(), (2, 2, 2, 2))
    for i in range(32):
        windows = [padded[i, :, r:r + 16, c:c + 16] for r in range(5) for c in range(5)]
        windows += [w.flip(-1) for w in windows]
        assert any(torch.equal(out[i], w) for w in windows)
    plain = BatchMaker(x, synth.mean, synth.std, torch.device("cpu"), False)
    assert torch.allclose(plain.train_batch(torch.arange(4)), plain.normalise(x[:4]))


def test_no_weight_decay_on_bn_and_bias_and_schedules():
    groups = param_groups(tiny_cnn(), 1e-4)
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 1e-4 and groups[1]["weight_decay"] == 0
    assert all(p.ndim > 1 for p in groups[0]["params"]) and all(p.ndim <= 1 for p in groups[1]["params"])
    assert len(decayed) == 3
    assert lr_factor(0, 100, 10, "cosine") < 0.2 and lr_factor(10, 100, 10, "cosine") == pytest.approx(1)
    assert lr_factor(99, 100, 10, "cosine") < 0.01 and lr_factor(50, 100, 10, "constant") == 1
    assert lr_factor(0, 100, 0, "onecycle") == pytest.approx(1 / 25) and lr_factor(99, 100, 0, "onecycle") < 0.01


@pytest.mark.parametrize(
    ("d", "field"),
    [({"optimizer": "lamb"}, "train.optimizer"), ({"lr": -1}, "train.lr"), ({"epochs": 1, "steps": 5}, "exclusive"),
     ({"augment": ["crop", "mixup"]}, "train.augment"), ({"device": "tpu"}, "train.device"),
     ({"amp": "fp8"}, "train.amp"), ({"foo": 1}, "train.foo")],
)
def test_config_errors(d, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        TrainConfig.from_dict(d)


def test_config_round_trip_and_steps_budget():
    cfg = TrainConfig.from_dict({"steps": 10, "augment": ["flip"], "optimizer": "adamw", "lr": 1e-3})
    assert cfg.epochs is None and cfg.steps == 10 and cfg.augment == ("flip",)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_zero_init_residual_and_thread_setting(monkeypatch):
    from nas_harness.train.trainer import cpu_threads

    model = project_model()
    n = zero_init_residual(model)
    residual = [m for m in model.modules() if getattr(m, "use_res_connect", False)]
    assert n == len(residual) > 0
    last_bns = [[b for b in m.block.modules() if isinstance(b, nn.BatchNorm2d)][-1] for m in residual]
    assert all(not b.weight.detach().any() for b in last_bns)
    before = torch.get_num_threads()
    try:
        assert cpu_threads(1) == 1 and torch.get_num_threads() == 1
        assert cpu_threads(None) == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert cpu_threads("auto") == 1  # a launcher's choice is respected
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert cpu_threads("auto") >= 1
        import nas_harness.train.trainer as trainer_mod

        cores = len(os.sched_getaffinity(0))
        monkeypatch.setattr(trainer_mod, "busy_cores", lambda: 0.1)
        assert cpu_threads("auto") == cores  # idle machine: every core
        monkeypatch.setattr(trainer_mod, "busy_cores", lambda: cores + 3.0)
        assert cpu_threads("auto") == 1  # oversubscribed: one thread, never zero
        monkeypatch.setattr(trainer_mod, "busy_cores", lambda: 1.0)
        assert cpu_threads("auto") == max(1, cores - 1)
    finally:
        torch.set_num_threads(before)


def test_cutout_blanks_a_square_to_the_mean(synth):
    gen = torch.Generator().manual_seed(0)
    maker = BatchMaker(synth.train_x, synth.mean, synth.std, torch.device("cpu"), True, ("cutout",), 0, gen)
    out = maker.train_batch(torch.arange(16))
    plain = maker.normalise(synth.train_x[:16])
    changed = out != plain
    assert bool((out[changed] == 0).all())  # cut pixels are exactly the (normalised) mean
    per_sample = changed.flatten(1).float().sum(1)
    assert bool((per_sample > 0).all()) and bool((per_sample <= 3 * 9 * 9).all())


def test_checkpoint_resume_continues_exactly(synth, tmp_path):
    """A run interrupted after epoch 1 and resumed from its checkpoint ends bit-identical to one that was not."""
    cfg = TrainConfig(epochs=3, augment=("crop", "flip"), batch_size=32, lr=0.05, seed=3, threads=1)
    whole = tiny_cnn()
    ref = train(whole, synth, cfg)

    class Stop(Exception):
        pass

    def stop_after_first(report: EpochReport) -> None:
        if report.epoch == 1:
            raise Stop

    ck = tmp_path / "run" / "checkpoint.pt"
    with pytest.raises(Stop):
        train(tiny_cnn(), synth, cfg, on_epoch=stop_after_first, checkpoint=ck)
    assert ck.exists() and not ck.with_name("checkpoint.pt.tmp").exists()
    resumed_model = tiny_cnn()  # fresh weights: everything must come from the checkpoint
    seen: list[int] = []
    res = train(resumed_model, synth, cfg, on_epoch=lambda r: seen.append(r.epoch), checkpoint=ck)
    assert seen == [2, 3] and [h["epoch"] for h in res.history] == [1, 2, 3]
    assert res.final_val_acc == ref.final_val_acc and res.steps == ref.steps
    for a, b in zip(whole.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    again = train(tiny_cnn(), synth, cfg, checkpoint=ck)  # finished: nothing left to train
    assert again.final_val_acc == ref.final_val_acc and again.history == res.history

    with pytest.raises(ConfigError, match="different recipe"):
        train(tiny_cnn(), synth, TrainConfig(epochs=4, batch_size=32, threads=1), checkpoint=ck)
    ck.write_bytes(b"not a checkpoint")  # ignored with a warning naming it; training starts afresh
    with pytest.warns(RuntimeWarning, match="checkpoint.*ignored.*starts afresh"):
        fresh = train(tiny_cnn(), synth, cfg, checkpoint=ck)
    assert [h["epoch"] for h in fresh.history] == [1, 2, 3] and fresh.final_val_acc == ref.final_val_acc


def test_cpu_kernels_are_attached_for_the_run_and_recorded(synth, tmp_path, monkeypatch):
    """train.cpu_kernels: 'auto' trains through the kernels (when they can be built here) and gives the model
    back with its stock classes; 'off' and NAS_HARNESS_NATIVE=0 train the stock modules; each is recorded.
    A checkpoint written with the kernels resumes without them (same state-dict keys)."""
    from nas_harness import kernels
    from nas_harness.model import ConvBNAct

    model = project_model(in_ch=3)
    stock_types = [type(m) for m in model.modules()]
    seen: list[str] = []
    model.features[1].register_forward_hook(lambda mod, i, o: seen.append(type(mod[0].block[0]).__name__))
    cfg = TrainConfig(epochs=2, batch_size=64, threads=1, seed=1)

    class Stop(Exception):
        pass

    def stop_after_first(report: EpochReport) -> None:
        if report.epoch == 1:
            raise Stop

    ck = tmp_path / "ck.pt"
    with pytest.raises(Stop):
        train(model, synth, cfg, on_epoch=stop_after_first, checkpoint=ck)
    on = kernels.available()
    assert seen and set(seen) == {"FusedConvBNAct" if on else "ConvBNAct"}  # training and evaluation
    assert [type(m) for m in model.modules()] == stock_types  # stock classes back, also after an exception
    seen.clear()
    res = train(model, synth, TrainConfig(**{**cfg.to_dict(), "cpu_kernels": "off"}), checkpoint=ck)
    assert res.cpu_kernels == "off" and set(seen) == {"ConvBNAct"} and [h["epoch"] for h in res.history] == [1, 2]

    res = train(model, synth, TrainConfig(steps=2, batch_size=64, threads=1))
    assert res.cpu_kernels == ("on" if on else f"unavailable: {kernels.unavailable_reason()}")
    assert res.to_dict()["cpu_kernels"] == res.cpu_kernels
    monkeypatch.setenv(kernels.ENV_VAR, "0")
    assert train(model, synth, TrainConfig(steps=2, batch_size=64, threads=1)).cpu_kernels == \
        "unavailable: NAS_HARNESS_NATIVE=0"
    monkeypatch.delenv(kernels.ENV_VAR)
    kernels.accelerate(model)  # a model the caller accelerated: 'off' trains it stock, and hands it back as given
    seen.clear()
    train(model, synth, TrainConfig(steps=2, batch_size=64, threads=1, cpu_kernels="off"))
    assert set(seen) == {"ConvBNAct"} and kernels.is_accelerated(model)
    assert all(isinstance(m, ConvBNAct) for m in model.modules() if type(m).__name__ == "FusedConvBNAct")
