"""Building and loading the C kernels (cached per source and machine, clean fallback without a compiler),
and the checked boundary: every wrong tensor raises a Python error before a pointer reaches C."""

from __future__ import annotations

import shutil

import pytest
import torch

from nas_harness import kernels
from nas_harness.kernels import _native

CL = torch.channels_last


def _cl(*shape: int) -> torch.Tensor:
    return torch.randn(*shape).contiguous(memory_format=CL)


def test_build_is_cached_and_keyed_by_the_sources(tmp_path, monkeypatch):
    cc = _native._compiler()
    if cc is None:
        pytest.skip("no C compiler here")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = _native._build(cc)
    assert first.parent == tmp_path / "nas-harness" / "native" and first.suffix == ".so"
    stamp = first.stat().st_mtime_ns
    assert _native._build(cc) == first and first.stat().st_mtime_ns == stamp  # not rebuilt
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name, first.name + ".sha256"]  # no temporary
    source = tmp_path / "extra.c"
    source.write_text("void nas_harness_test_symbol(void) {}\n")
    monkeypatch.setattr(_native, "_SOURCES", [*_native._SOURCES, source])
    assert _native._build(cc) != first  # a changed source is a new library


def test_the_sources_ship_with_the_package():
    assert {p.name for p in _native._SOURCES} == {"bn_act.c", "depthwise.c", "se.c"}


def test_without_a_compiler_kernel_tests_skip_cleanly_and_training_runs_stock(tmp_path, monkeypatch, request):
    """Simulates, in this process, a machine without a C compiler and one whose compiler fails."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no cached build to fall back on
    monkeypatch.setattr(_native, "_compiler", lambda: None)
    monkeypatch.setattr(_native, "_state", {})
    with pytest.warns(RuntimeWarning, match="CPU kernels unavailable, using stock PyTorch ops"):
        assert not kernels.available()
    assert _native.library() is None  # decided once per process: no second warning, no second try
    assert kernels.unavailable_reason() == "no C compiler found (set CC)"
    with pytest.raises(pytest.skip.Exception, match="unavailable here: no C compiler"):
        request.getfixturevalue("native")  # what every test needing the compiled kernels asks for
    with pytest.raises(RuntimeError, match="C kernels are unavailable"):  # a direct call says why
        _native.se_gate_grad(_cl(2, 8, 3, 3), _cl(2, 8, 3, 3))
    if shutil.which("false"):  # a compiler that fails: the same, with its message
        monkeypatch.setattr(_native, "_compiler", lambda: "false")
        monkeypatch.setattr(_native, "_state", {})
        with pytest.warns(RuntimeWarning, match="false failed"):
            assert kernels.unavailable_reason().startswith("false failed")

    from nas_harness.data import ProxyConfig, load_proxy
    from nas_harness.model import build_model
    from nas_harness.presets import efficientnet_b0
    from nas_harness.scaling import scale_arch
    from nas_harness.train import TrainConfig, train

    data = load_proxy(ProxyConfig(dataset="synthetic", resolution=16))
    model = build_model(scale_arch(efficientnet_b0(), width=0.25, depth=0.34), num_classes=data.num_classes,
                        stem_stride=1)
    res = train(model, data, TrainConfig(steps=3, batch_size=32, threads=1))
    assert res.cpu_kernels.startswith("unavailable: ") and res.steps == 3
    # accelerate() itself still works: the fast classes fall back to the stock ops (and tap-matrix gradients)
    kernels.accelerate(model).train()
    torch.nn.functional.cross_entropy(model(_cl(4, 3, 16, 16)), torch.arange(4)).backward()


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv(kernels.ENV_VAR, "0")
    assert _native.library() is None and not kernels.available()
    assert kernels.unavailable_reason() == "NAS_HARNESS_NATIVE=0"
    monkeypatch.setenv(kernels.ENV_VAR, "1")
    assert kernels.available() == (_native.library() is not None)


# --- the checked boundary --------------------------------------------------------------------------------
# Each case calls a wrapper with one argument wrong; the error must be a Python exception naming it, raised
# before anything reaches C (most of these would read or write out of bounds in C).

def _bn_args(**bad):
    c = 6
    args = dict(x=_cl(2, c, 3, 3), weight=torch.ones(c), bias=torch.zeros(c), running_mean=torch.zeros(c),
                running_var=torch.ones(c), factor=0.1, eps=1e-5, act=1)
    return {**args, **bad}


def _bwd_args(**bad):
    c = 6
    args = dict(grad_out=_cl(2, c, 3, 3), x=_cl(2, c, 3, 3), weight=torch.ones(c), bias=torch.zeros(c),
                mean=torch.zeros(c), invstd=torch.ones(c), act=1, need_weight=True, need_bias=True)
    return {**args, **bad}


def _dw_args(**bad):
    args = dict(x=_cl(2, 8, 5, 5), grad_out=_cl(2, 8, 3, 3), kernel=(3, 3), stride=(2, 2), padding=(1, 1))
    return {**args, **bad}


NCHW = torch.randn(2, 6, 3, 3)  # contiguous, but not channels_last


@pytest.mark.parametrize(("fn", "kwargs", "error", "match"), [
    (_native.bn_act_forward_train, _bn_args(x=_cl(2, 6, 3, 3).double()), TypeError, "x: expected dtype torch.float32"),
    (_native.bn_act_forward_train, _bn_args(x=NCHW), ValueError, "x: expected a channels_last"),
    (_native.bn_act_forward_train, _bn_args(x=torch.randn(2, 6, 3)), ValueError, "x: expected a 4-D"),
    (_native.bn_act_forward_train, _bn_args(x=_cl(2, 6, 3, 3)[:, :, 1:]), ValueError, "x: expected a channels_last"),
    (_native.bn_act_forward_train, _bn_args(x=_cl(1, 6, 1, 1)), ValueError, "more than 1 value per channel"),
    (_native.bn_act_forward_train, _bn_args(x=torch.empty(0, 6, 3, 3)), ValueError, "non-empty"),
    (_native.bn_act_forward_train, _bn_args(x=[1.0, 2.0]), TypeError, "x: expected a torch.Tensor"),
    (_native.bn_act_forward_train, _bn_args(x=torch.empty(2, 6, 3, 3, device="meta")), ValueError, "CPU tensor"),
    (_native.bn_act_forward_train, _bn_args(weight=torch.ones(5)), ValueError, r"weight: expected shape \(6,\)"),
    (_native.bn_act_forward_train, _bn_args(bias=torch.zeros(12)[::2]), ValueError, "bias: expected a contiguous"),
    (_native.bn_act_forward_train, _bn_args(running_var=torch.ones(6, dtype=torch.float16)), TypeError,
     "running_var: expected dtype"),
    (_native.bn_act_forward_train, _bn_args(running_var=None), ValueError, "give both or neither"),
    (_native.bn_act_forward_train, _bn_args(act=7), ValueError, "activation code"),
    (_native.bn_act_forward_train, _bn_args(eps=-1.0), ValueError, "eps"),
    (_native.bn_act_forward_eval, dict(x=_cl(2, 6, 3, 3), weight=torch.ones(6), bias=torch.zeros(6),
                                       running_mean=torch.zeros(7), running_var=torch.ones(6), eps=1e-5, act=0),
     ValueError, "running_mean: expected shape"),
    (_native.bn_act_backward, _bwd_args(grad_out=_cl(2, 6, 3, 4)), ValueError,
     r"grad_out: expected shape \(2, 6, 3, 3\)"),
    (_native.bn_act_backward, _bwd_args(grad_out=NCHW), ValueError, "grad_out: expected a channels_last"),
    (_native.bn_act_backward, _bwd_args(invstd=torch.ones(6, 1)), ValueError, "invstd: expected shape"),
    (_native.se_gate_grad, dict(grad_out=_cl(2, 6, 3, 3), x=_cl(2, 6, 4, 4)), ValueError, "grad_out: expected shape"),
    (_native.se_input_grad, dict(grad_out=_cl(2, 6, 3, 3), gate=torch.rand(2, 6).t(), through_pool=torch.rand(2, 6)),
     ValueError, "gate: expected shape"),
    (_native.se_input_grad, dict(grad_out=_cl(2, 6, 3, 3), gate=torch.rand(6, 2).t(), through_pool=torch.rand(2, 6)),
     ValueError, "gate: expected a contiguous"),
    (_native.se_input_grad, dict(grad_out=_cl(2, 6, 3, 3), gate=torch.rand(2, 6), through_pool=torch.rand(2, 6,
                                                                                                     dtype=torch.float64)),
     TypeError, "through_pool: expected dtype"),
    (_native.depthwise_weight_grad, _dw_args(grad_out=_cl(2, 8, 5, 5)), ValueError,
     r"grad_out: expected shape \(2, 8, 3, 3\)"),
    (_native.depthwise_weight_grad, _dw_args(kernel=(3,)), ValueError, "kernel: expected two integers"),
    (_native.depthwise_weight_grad, _dw_args(stride=(0, 1)), ValueError, "stride: expected two integers >= 1"),
    (_native.depthwise_weight_grad, _dw_args(kernel=(9, 9), padding=(0, 0)), ValueError, "does not fit"),
    (_native.depthwise_weight_grad, _dw_args(x=torch.randn(2, 8, 5, 5)), ValueError, "x: expected a channels_last"),
], ids=lambda v: getattr(v, "__name__", None) if callable(v) else None)
def test_wrong_tensors_raise_before_reaching_c(fn, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(**kwargs)


def test_checked_calls_compute_where_the_inputs_are_right(native):
    out, mean, invstd = _native.bn_act_forward_train(**_bn_args(act=0))
    assert out.shape == (2, 6, 3, 3) and out.is_contiguous(memory_format=CL) and mean.shape == invstd.shape == (6,)
    dx, dw, db = _native.bn_act_backward(**_bwd_args(need_bias=False))
    assert dx.shape == (2, 6, 3, 3) and dw.shape == (6,) and db is None
    x, g = _cl(2, 8, 5, 5), _cl(2, 8, 3, 3)
    w = torch.randn(8, 1, 3, 3)
    ref = torch.ops.aten.convolution_backward(g, x, w, None, [2, 2], [1, 1], [1, 1], False, [0, 0], 8,
                                              [False, True, False])[1]
    torch.testing.assert_close(_native.depthwise_weight_grad(x, g, (3, 3), (2, 2), (1, 1)), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(_native.se_gate_grad(g, g), (g * g).sum((2, 3)), rtol=1e-5, atol=1e-5)
