"""The weight-sharing supernet: it contains every arch of the space exactly (inherited weights load into
``build_model(arch)`` and give the supernet's outputs), its training resumes bit-exactly after SIGKILL, and a
supernet study runs end to end (search, export, confirm, the fidelity audit) on tiny real data."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.studies import tiny_dict

from nas_harness.errors import ConfigError
from nas_harness.model import build_model
from nas_harness.presets import efficientnet_b0
from nas_harness.scaling import scale_arch
from nas_harness.space import SearchSpace
from nas_harness.study.config import validate
from nas_harness.supernet import Supernet, largest_arch, smallest_arch, step_archs, subnet_state_dict

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: two on a busy 2-core machine are many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _space() -> SearchSpace:
    """Every axis varies: kernels, expansions (incl. 1 = no expand conv), SE, repeats, widths."""
    base = scale_arch(efficientnet_b0(), width=0.25, depth=0.5)
    return SearchSpace.from_dict({"kernels": [3, 5, 7], "expands": [1, 3, 6], "se": [True, False],
                                  "repeats_delta": 1, "widths": [0.75, 1.0, 1.5]}, base)


def _archs(space: SearchSpace) -> list:
    rng = random.Random(0)
    return [space.base, largest_arch(space), smallest_arch(space), *(space.sample(rng) for _ in range(5))]


def test_every_arch_of_the_space_is_contained_exactly() -> None:
    space = _space()
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10, in_channels=1, stem_stride=2)
    with torch.no_grad():  # non-trivial BN statistics and affine parameters, so slicing them is tested too
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()
    net.eval()
    x = torch.randn(2, 1, 16, 16)
    seen = set()
    for arch in _archs(space):
        model = build_model(arch, num_classes=10, in_channels=1, stem_stride=2)
        model.load_state_dict(subnet_state_dict(net, arch), strict=True)  # every key, every shape
        model.eval()
        with torch.no_grad():
            # the same ops on the same values: equal to the bit, not only within float32 tolerance
            assert torch.equal(net(x, arch), model(x)), str(arch)
        seen.add(str(arch))
    assert len(seen) == 8
    assert largest_arch(space) in space and smallest_arch(space) in space
    assert all(st.kernel == 7 and st.expand == 6 and st.se for st in largest_arch(space).stages)
    assert all(st.kernel == 3 and st.expand == 1 and st.se is None for st in smallest_arch(space).stages)


def test_training_mode_gradients_reach_the_shared_weights_like_the_subnet() -> None:
    space = _space()
    torch.manual_seed(1)
    net = Supernet(space, num_classes=10, in_channels=1, stem_stride=2)
    arch = space.sample(3)
    model = build_model(arch, num_classes=10, in_channels=1, stem_stride=2)
    model.load_state_dict(subnet_state_dict(net, arch))
    x, y = torch.randn(4, 1, 16, 16), torch.randint(0, 10, (4,))
    for m in (net, model):
        m.train()
    arch0 = arch.replace(dropout=0.0, drop_path=0.0)  # no random draws: the two passes see the same masks
    torch.nn.functional.cross_entropy(net(x, arch0), y).backward()
    model.classifier[0].p = 0.0
    for blk in model.modules():
        if hasattr(blk, "stochastic_depth"):
            blk.stochastic_depth.p = 0.0
    torch.nn.functional.cross_entropy(model(x), y).backward()
    head = net.features[-1][0].weight.grad
    cin = arch.stages[-1].channels
    assert torch.allclose(head[:, :cin], model.features[-1][0].weight.grad, atol=1e-6)
    assert torch.count_nonzero(head[:, cin:]) == 0  # channels the subnet does not use get no gradient
    with pytest.raises(ConfigError, match="not in the supernet's search space"):
        subnet_state_dict(net, efficientnet_b0())


def test_sampling_is_a_function_of_seed_and_step() -> None:
    space = _space()
    assert step_archs(space, "uniform", 0, 7, 3) == step_archs(space, "uniform", 0, 7, 3)
    assert step_archs(space, "uniform", 0, 7, 3) != step_archs(space, "uniform", 0, 7, 4)
    sandwich = step_archs(space, "sandwich", 2, 7, 3)
    assert len(sandwich) == 4 and sandwich[0] == largest_arch(space) and sandwich[1] == smallest_arch(space)


@pytest.mark.slow
def test_sample_skip_makes_archs_without_skips_subnets_exactly() -> None:
    """With ``sample_skip`` the sampler draws each stage's residual skip too (the other choices are those drawn
    without it), archs without skips are subnets, and their inherited weights give the supernet's outputs."""
    from nas_harness.supernet import why_not_subnet

    space = _space()
    plain = [step_archs(space, "uniform", 0, 7, s)[0] for s in range(40)]
    drawn = [step_archs(space, "uniform", 0, 7, s, sample_skip=True)[0] for s in range(40)]
    assert [a.replace_stages(skip=True) for a in drawn] == plain  # only the skips differ
    skips = [st.skip for a in drawn for st in a.stages]
    assert 0.3 < sum(skips) / len(skips) < 0.7  # on and off, about half each (280 draws)
    sandwich = step_archs(space, "sandwich", 1, 7, 0, sample_skip=True)
    assert sandwich[0] == largest_arch(space) and not any(st.skip for st in sandwich[1].stages)

    no_skip = space.base.replace_stages(skip=False)
    assert "skip differ" in why_not_subnet(space, no_skip) and "sample_skip = true" in why_not_subnet(space, no_skip)
    assert why_not_subnet(space, no_skip, sample_skip=True) is None
    assert "kernel 9" in why_not_subnet(space, no_skip.replace_stages([2], kernel=9), sample_skip=True)
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10, in_channels=1, stem_stride=2, sample_skip=True)
    net.eval()
    x = torch.randn(2, 1, 16, 16)
    for arch in (no_skip, *drawn[:3]):
        model = build_model(arch, num_classes=10, in_channels=1, stem_stride=2)
        model.load_state_dict(subnet_state_dict(net, arch), strict=True)
        with torch.no_grad():
            assert torch.equal(net(x, arch), model.eval()(x)), str(arch)
    with torch.no_grad():  # the skip matters: the same weights without it compute something else
        assert not torch.equal(net(x, space.base), net(x, no_skip))
    with pytest.raises(ConfigError, match="not in the supernet's search space: stage 1 stride/skip"):
        subnet_state_dict(Supernet(space, 10, 1, 2), no_skip)


_RUN = """
import sys
from pathlib import Path
import torch
from nas_harness.data import ProxyConfig, load_proxy
from nas_harness.presets import efficientnet_b0
from nas_harness.scaling import scale_arch
from nas_harness.space import SearchSpace
from nas_harness.supernet import Supernet, train_supernet
from nas_harness.train import TrainConfig

base = scale_arch(efficientnet_b0(), width=0.25, depth=0.34)
space = SearchSpace.from_dict({"kernels": [3, 5], "expands": [1, 3], "repeats_delta": 0}, base)
data = load_proxy(ProxyConfig(dataset="synthetic", train_subset=128, val_size=32, resolution=16, channels=3))
recipe = TrainConfig(epochs=int(sys.argv[2]), batch_size=32, optimizer="adamw", lr=0.01, device="cpu", threads=1,
                     augment=("flip",), seed=5)
torch.manual_seed(5)
net = Supernet(space, data.num_classes, data.in_channels, 1)
ck = train_supernet(net, data, recipe, "sandwich", 1, True, Path(sys.argv[1]), {"test": 1})
torch.save(net.state_dict(), sys.argv[1] + ".final")
"""


def _run(path: Path, epochs: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _RUN, str(path), str(epochs)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_training_resumes_bit_exactly_after_sigkill(tmp_path: Path) -> None:
    epochs = 4
    whole = _run(tmp_path / "whole.pt", epochs)
    killed = _run(tmp_path / "killed.pt", epochs)
    deadline = time.time() + 120
    while not (tmp_path / "killed.pt").exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the training finished before it could be killed"
    ck = torch.load(tmp_path / "killed.pt", weights_only=True)
    assert 1 <= ck["epoch"] < epochs
    resumed = _run(tmp_path / "killed.pt", epochs)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()[-2000:]
    assert whole.wait(timeout=300) == 0, whole.stderr.read().decode()[-2000:]
    a = torch.load(str(tmp_path / "whole.pt") + ".final", weights_only=True)
    b = torch.load(str(tmp_path / "killed.pt") + ".final", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _real(tmp_path: Path, **kw: object) -> dict:
    """A tiny real-data supernet study: Fashion-MNIST, 300 images at 16 px, one supernet epoch."""
    return tiny_dict(tmp_path, **{
        "data": {"dataset": "fashion_mnist", "train_subset": 300, "val_size": 100, "resolution": 16, "channels": 1},
        "evaluator": {"kind": "supernet"}, "supernet": {"epochs": 1, "bn_batches": 2, "bn_batch_size": 64},
        "sampler": {"kind": "random", "enqueue": ["base"]}, "run": {"n_trials": 4}, **kw})


@pytest.mark.parametrize(("table", "message"), [
    ({"sampling": "greedy"}, r"^supernet\.sampling = 'greedy' is invalid"),
    ({"n_random": 3}, r"^supernet\.n_random: 3 has no effect here"),
    ({"epochs": 1, "steps": 5}, r"^supernet\.steps: epochs and steps are mutually exclusive"),
    ({"bn_batches": 0}, r"^supernet\.bn_batches = 0 is invalid"),
    ({"lr": -1.0}, r"^supernet\.lr = -1\.0 is invalid"),
    ({"epochs": "3"}, r"^supernet\.epochs = '3' is invalid"),
    ({"nope": 1}, r"^supernet\.nope: unknown key"),
])
def test_bad_supernet_keys_are_one_line(tmp_path: Path, table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        validate(tiny_dict(tmp_path, evaluator={"kind": "supernet"}, supernet=table))
    assert "\n" not in str(err.value)


def _check_search(cfg, n: int) -> list:
    import optuna

    trials = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url).trials
    done = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(done) == n, [t.user_attrs.get("fail_reason") for t in trials]
    ids = {t.user_attrs["supernet_id"] for t in done}
    assert len(ids) == 1  # one supernet, trained once, shared by every trial
    for t in done:
        ua = t.user_attrs
        assert ua["evaluator"] == "supernet" and ua["val_n"] == 100 and ua["epochs"] == 1.0 and ua["full_budget"]
        assert ua["bn_batches"] == 2 and ua["bn_batch_size"] == 64 and ua["supernet_sampling"] == "uniform"
        assert "inherited-weight" in ua["accuracy_note"] and 0.0 <= ua["val_acc"] <= 1.0
    return done


def test_a_supernet_study_searches_exports_confirms_and_is_audited(tmp_path: Path, capsys) -> None:
    from nas_harness.cli import main
    from nas_harness.evaluation.confirm import ConfirmSettings, run_confirm
    from nas_harness.study.search import run_search
    from nas_harness.train import evaluate

    cfg = validate(_real(tmp_path))
    assert run_search(cfg).n_complete == 4
    done = _check_search(cfg, 4)
    ck = next((cfg.study_dir / "supernet").glob("supernet-*.pt"))
    stamp = ck.stat().st_mtime_ns
    assert run_search(validate(_real(tmp_path, run={"n_trials": 5}))).n_complete == 5
    assert ck.stat().st_mtime_ns == stamp  # the finished supernet is reused, not trained again

    # export: the inherited weights load into build_model(arch) and give the recorded accuracy
    out = tmp_path / "w.pt"
    assert main(["export", str(cfg.study_dir), "--rank", "1", "--by", "val_acc", "--weights", str(out)]) == 0
    arch_line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("stem_"))
    from nas_harness.data import load_proxy
    from nas_harness.presets import parse_arch

    arch = parse_arch(arch_line)
    model = build_model(arch, num_classes=10, in_channels=1, stem_stride=1)
    model.load_state_dict(torch.load(out, weights_only=True), strict=True)
    data = load_proxy(cfg.data)
    acc, _ = evaluate(model, data.val_x, data.val_y, cfg.train_config(), mean=data.mean, std=data.std)
    best = max(done, key=lambda t: t.user_attrs["val_acc"])
    assert acc == pytest.approx(best.user_attrs["val_acc"], abs=1e-9)

    # confirm retrains from scratch; the audit retrains a sample from scratch and compares the rankings
    conf = run_confirm(cfg.study_dir, ConfirmSettings(top=1, seeds=1, by="val_acc"), progress=False, figure=False,
                       log=print)
    assert conf.analysis.rows
    # the audit, as a user runs it: the study's recipe from scratch is the high fidelity (same epochs allowed)
    assert main(["fidelity", str(cfg.study_dir), "--against", "train", "--top", "2", "--random", "2", "--epochs",
                 "1", "--no-zero-cost", "--no-progress", "--no-figure"]) == 0
    summary = json.loads((cfg.study_dir / "fidelity.json").read_text())
    assert summary["proxy_evaluator"] == "supernet" and summary["n_archs"] >= 3
    assert -1.0 <= summary["kendall_tau"] <= 1.0 and summary["sample"] == "stratified by MACs"
    audit = summary["audit"]
    assert audit["verdict_vs_macs"] in ("beats", "tied within noise", "worse") and audit["macs_buckets"]
    assert {"kendall_tau", "spearman_rho", "top_k_recall", "regret"} <= set(audit["macs"]) <= set(audit["params"])
    assert "Verdict:" in (cfg.study_dir / "fidelity.md").read_text()

    # the report says what the accuracies are
    from nas_harness.report.study_report import write_report

    write_report(cfg.study_dir, figures=False)
    assert "inherited-weight estimates" in (cfg.study_dir / "report.md").read_text()


@pytest.mark.ray
@pytest.mark.slow
def test_a_supernet_study_on_ray(tmp_path: Path, ray_local: None) -> None:
    from nas_harness.evaluation.fidelity import FidelityConfig, run_fidelity
    from nas_harness.study.search import run_search

    d = _real(tmp_path, ray={"cpus_per_trial": 1.0, "max_concurrent": 2})
    d["run"]["backend"] = "ray"
    d["supernet"]["job"] = "ray"  # the supernet trains as one Ray job too
    cfg = validate(d)
    assert run_search(cfg).n_complete == 4
    done = _check_search(cfg, 4)
    assert {t.user_attrs["backend"] for t in done} == {"ray"}
    fid = run_fidelity(cfg.study_dir, FidelityConfig(top=2, random=1, train={"epochs": 1}, zero_cost=False),
                       backend="ray", progress=False, figure=False, log=print)
    assert fid.summary["proxy_evaluator"] == "supernet" and fid.summary["n_archs"] >= 2


def test_the_training_lock_makes_a_second_process_wait(tmp_path: Path) -> None:
    """Two holders of the supernet's lock file never overlap: the second waits (and says so) until the first
    releases it, then finds the finished checkpoint instead of training again."""
    import threading

    from nas_harness.supernet._train import file_lock

    lock = tmp_path / "s.lock"
    held, release, order, said = threading.Event(), threading.Event(), [], []

    def first() -> None:
        with file_lock(lock):
            order.append("first in")
            held.set()
            release.wait(30)
            order.append("first out")

    t = threading.Thread(target=first)
    t.start()
    assert held.wait(30)

    def second() -> None:
        with file_lock(lock, said.append):
            order.append("second in")

    u = threading.Thread(target=second)
    u.start()
    deadline = time.time() + 30
    while not said and time.time() < deadline:  # the second has found the lock taken
        time.sleep(0.01)
    assert said and "waiting" in said[0] and order == ["first in"]
    release.set()
    t.join(30)
    u.join(30)
    assert order == ["first in", "first out", "second in"]


def test_export_finetune_is_seeded_and_loads_strictly(tmp_path: Path) -> None:
    """``export --weights --finetune N``: the fine-tuned state dict loads into ``build_model(arch)`` with
    ``strict=True``, differs from the inherited one, and is a function of the seed (two runs, same weights)."""
    cfg = validate(_real(tmp_path))
    ev = cfg.make_evaluator()
    arch = cfg.search_space().sample(3)
    inherited, tuned, again = tmp_path / "inherited.pt", tmp_path / "tuned.pt", tmp_path / "again.pt"
    assert ev.export(arch, inherited)["finetune_epochs"] == 0.0
    info = ev.export(arch, tuned, 1.0)
    assert 0.0 <= info["finetuned_val_acc"] <= 1.0 and info["finetune_epochs"] == 1.0
    ev.export(arch, again, 1.0)
    sds = [torch.load(p, weights_only=True) for p in (inherited, tuned, again)]
    for sd in sds:
        build_model(arch, num_classes=10, in_channels=1, stem_stride=1).load_state_dict(sd, strict=True)
    a, b, c = sds
    assert a.keys() == b.keys() == c.keys()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())  # fine-tuning changed them
    assert all(torch.equal(b[k], c[k]) for k in b)  # same seed, same weights
