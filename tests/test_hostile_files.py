"""Issue #12: files that travel between people and machines never run code and never crash the harness.

- A pickle whose unpickling runs code, planted as a training checkpoint (torch ``.pt`` and plain pickle), as a
  trial cache entry and as a CIFAR batch: nothing runs (a marker file would be written), and each is refused
  with one line naming the file (checkpoint: a warning, then the run starts afresh; CIFAR: a DataError).
- Cache entries that do not validate (``{}``, a text ``val_acc``, NaN, a foreign arch) are misses: the trial
  trains and succeeds.
- Checkpoints hold only what ``weights_only=True`` loads, so a real one still resumes exactly.
"""

from __future__ import annotations

import io
import json
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.mounts import full_disk
from torch import nn

from nas_harness.data import ProxyConfig, clear_cache, load_cifar, load_proxy
from nas_harness.errors import DataError
from nas_harness.train import TrainConfig, train
from nas_harness.train.trainer import _load_checkpoint, _save_checkpoint
from nas_harness.trial import ResultCache, TrialSpec, cache_key, run_trial, valid_entry


class Evil:
    """Unpickling this writes the marker file (stands in for any shell command)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def evil_payloads(marker: Path) -> dict[str, bytes]:
    """The same code-running object as a torch checkpoint (zip), a plain pickle, and inside a real-looking
    checkpoint dict."""
    buf = io.BytesIO()
    torch.save({"model": Evil(marker)}, buf)
    plain = pickle.dumps(Evil(marker))
    nested = io.BytesIO()
    torch.save({"recipe": {}, "model": {"w": torch.zeros(1)}, "history": [Evil(marker)]}, nested)
    return {"torch-zip": buf.getvalue(), "plain-pickle": plain, "nested-in-checkpoint": nested.getvalue(),
            "pickle-protocol-0": pickle.dumps(Evil(marker), protocol=0)}


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)  # the same initial weights whatever ran before
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10))


@pytest.fixture(scope="module")
def synth():
    return load_proxy(ProxyConfig(dataset="synthetic", train_subset=128, val_size=32, resolution=16))


CFG = TrainConfig(epochs=2, batch_size=32, lr=0.05, seed=1, threads=1, augment=())


# ------------------------------------------------------------------------------------------ checkpoints

@pytest.mark.parametrize("kind", ["torch-zip", "plain-pickle", "nested-in-checkpoint", "pickle-protocol-0"])
def test_code_running_checkpoint_runs_nothing_and_training_starts_afresh(kind, synth, tmp_path):
    marker = tmp_path / "PWNED"
    ck = tmp_path / "run" / "checkpoint.pt"
    ck.parent.mkdir()
    ck.write_bytes(evil_payloads(marker)[kind])
    ref = train(tiny_cnn(), synth, CFG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = train(tiny_cnn(), synth, CFG, checkpoint=ck)
    assert not marker.exists(), "unpickling the checkpoint ran code"
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(msgs) == 1 and str(ck) in msgs[0] and "starts afresh" in msgs[0] and "\n" not in msgs[0]
    assert [h["epoch"] for h in res.history] == [1, 2] and res.final_val_acc == ref.final_val_acc
    assert torch.load(ck, weights_only=True)["epoch"] == 2  # replaced by a real checkpoint


@pytest.mark.parametrize("payload", [b"", b"\x00" * 100, b"PK\x03\x04 truncated zip", b"not a checkpoint"])
def test_garbage_checkpoint_is_a_warning_naming_the_file(payload, tmp_path):
    ck = tmp_path / "c.pt"
    ck.write_bytes(payload)
    with pytest.warns(RuntimeWarning, match=r"c\.pt.*ignored"):
        assert _load_checkpoint(ck, {"train": {}}) is None


def test_checkpoint_of_the_wrong_shape_is_ignored(tmp_path):
    ck = tmp_path / "c.pt"
    for payload in ([1, 2, 3], {"recipe": {}}, {"recipe": {}, "model": {"w": "not a tensor"}},
                    {"recipe": {}, "model": {}, "optimizer": {"state": {}, "param_groups": []},
                     "generator": torch.zeros(3, dtype=torch.uint8), "torch_rng": torch.zeros(3, dtype=torch.uint8),
                     "cuda_rng": None, "step": -1, "epoch": 0, "history": [], "train_time_s": 0.0,
                     "best_val_acc": 0.0, "best_epoch": 0, "wall_time_s": 0.0}):
        torch.save(payload, ck)
        with pytest.warns(RuntimeWarning, match="ignored"):
            assert _load_checkpoint(ck, {}) is None


def test_a_real_checkpoint_loads_with_weights_only_and_resumes(synth, tmp_path):
    ck = tmp_path / "c.pt"

    class Stop(Exception):
        pass

    def stop(rep):
        raise Stop

    with pytest.raises(Stop):
        train(tiny_cnn(), synth, CFG, on_epoch=stop, checkpoint=ck)
    loaded = torch.load(ck, weights_only=True)  # everything in it is a tensor, number, string, list or dict
    assert loaded["epoch"] == 1 and isinstance(loaded["generator"], torch.Tensor)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good checkpoint resumes without a warning
        res = train(tiny_cnn(), synth, CFG, checkpoint=ck)
    assert [h["epoch"] for h in res.history] == [1, 2]
    assert res.final_val_acc == train(tiny_cnn(), synth, CFG).final_val_acc


def test_evil_checkpoint_through_run_trial(tmp_path):
    """The ablation path: run_trial(checkpoint_dir=...) resuming a planted <cache key>.pt."""
    from nas_harness.arch import parse_arch

    spec = TrialSpec(arch=parse_arch("stem_c8_s1,ds_r1_k3_s1_e1_c8_se0.25,ir_r1_k3_s2_e3_c16,head_c32_do0_dp0_silu"),
                     data=ProxyConfig(dataset="synthetic", train_subset=128, val_size=32, resolution=16),
                     train=CFG, seed=0, stem_stride=1, macs_resolution=16, macs_num_classes=10)
    key = cache_key(spec, load_proxy(spec.data).fingerprint())
    marker = tmp_path / "PWNED"
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / f"{key}.pt").write_bytes(evil_payloads(marker)["torch-zip"])
    with pytest.warns(RuntimeWarning, match=f"{key}.pt.*ignored"):
        rec = run_trial(spec, checkpoint_dir=tmp_path / "ck")
    assert not marker.exists()
    assert rec.full_budget and rec.epochs == 2 and not (tmp_path / "ck" / f"{key}.pt").exists()


def test_checkpoint_on_a_full_disk_warns_and_training_goes_on(synth, tmp_path):
    with full_disk(tmp_path / "full") as disk:
        ck = disk / "run" / "c.pt"
        with pytest.warns(RuntimeWarning, match=r"^checkpoint not written: the disk is full \(no space left on the "
                                                r"device\) writing '[^']*/run/c\.pt'; training goes on"):
            res = train(tiny_cnn(), synth, CFG, checkpoint=ck)
        assert [h["epoch"] for h in res.history] == [1, 2]
        assert not ck.exists() and not ck.with_name("c.pt.tmp").exists()  # no partial file left
    (tmp_path / "afile").write_text("x")  # a file where the checkpoint folder should be
    with pytest.warns(RuntimeWarning, match="not written"):
        assert _save_checkpoint(tmp_path / "afile" / "c.pt", {"epoch": 1}) is False


# ------------------------------------------------------------------------------------------ trial cache

@pytest.mark.parametrize("entry", [
    b"{}", b'{"arch": "A", "val_acc": "0.9", "full_budget": true, "macs": 5}',
    b'{"arch": "A", "val_acc": NaN, "full_budget": true, "macs": 5}',
    b'{"arch": "A", "val_acc": 1.5, "full_budget": true, "macs": 5}',
    b'{"arch": "A", "val_acc": 0.9, "full_budget": "yes", "macs": 5}',
    b'{"arch": "A", "val_acc": 0.9, "full_budget": true, "macs": "5"}',
    b'{"arch": "A", "val_acc": 0.9, "full_budget": true}',
    b'{"arch": "B", "val_acc": 0.9, "full_budget": true, "macs": 5}',
    b'{"arch": "A", "val_acc": 0.9, "full_budget": true, "macs": 5, "epochs": [1]}',
    b'[1, 2]', b'"text"', b"\xff\xfe\x00", b'{"arch": ' * 100_000, b"",
])
def test_cache_entry_that_does_not_validate_is_a_miss(entry, tmp_path):
    (tmp_path / "k.json").write_bytes(entry)
    assert ResultCache(tmp_path).get("k", "A") is None


def test_valid_cache_entry_is_a_hit(tmp_path):
    (tmp_path / "k.json").write_text('{"arch": "A", "val_acc": 0.9, "full_budget": true, "macs": 5, "params": 3}')
    hit = ResultCache(tmp_path).get("k", "A")
    assert hit is not None and hit.val_acc == 0.9 and hit.macs == 5
    assert valid_entry({"arch": "A", "val_acc": 1, "full_budget": True, "macs": 1})
    assert not valid_entry({"arch": "A", "val_acc": True, "full_budget": True, "macs": 1})


def test_code_running_pickle_as_cache_entry_runs_nothing(tmp_path):
    marker = tmp_path / "PWNED"
    (tmp_path / "k.json").write_bytes(pickle.dumps(Evil(marker)))
    assert ResultCache(tmp_path).get("k", "A") is None
    assert not marker.exists()


@pytest.mark.parametrize("poison", [{}, {"val_acc": "0.99"}, {"val_acc": None}, {"full_budget": 1}])
def test_poisoned_cache_entry_is_retrained_not_failed(poison, tmp_path):
    from nas_harness.arch import parse_arch

    spec = TrialSpec(arch=parse_arch("stem_c8_s1,ds_r1_k3_s1_e1_c8_se0.25,ir_r1_k3_s2_e3_c16,head_c32_do0_dp0_silu"),
                     data=ProxyConfig(dataset="synthetic", train_subset=128, val_size=32, resolution=16),
                     train=CFG.replace(epochs=1), seed=0, stem_stride=1, macs_resolution=16, macs_num_classes=10)
    key = cache_key(spec, load_proxy(spec.data).fingerprint())
    good = run_trial(spec)
    entry = {**good.to_attrs(), **poison} if poison else {}
    entry = {k: v for k, v in entry.items() if v is not None or k not in poison}
    (tmp_path / f"{key}.json").write_text(json.dumps(entry))
    rec = run_trial(spec, cache=ResultCache(tmp_path))
    assert rec.cached is False and rec.val_acc == good.val_acc  # trained, not served from the bad entry
    assert ResultCache(tmp_path).get(key, str(spec.arch)) is not None  # and the entry was rewritten valid


# ------------------------------------------------------------------------------------------ CIFAR batches

def _cifar_dir(root: Path) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{j}" for j in range(1, 6)), "test_batch"]:
        x = rng.integers(0, 256, (10, 3 * 32 * 32), dtype=np.uint8)
        with (d / name).open("wb") as f:
            pickle.dump({b"data": x, b"labels": list(range(10))}, f, protocol=2)
    return d


@pytest.mark.parametrize("where", ["data", "labels", "top"])
def test_code_running_cifar_batch_runs_nothing(where, tmp_path):
    marker = tmp_path / "PWNED"
    d = _cifar_dir(tmp_path / "c")
    obj = Evil(marker) if where == "top" else {b"data": np.zeros((10, 3072), np.uint8), b"labels": list(range(10)),
                                               **{f"{where}".encode(): Evil(marker)}}
    (d / "data_batch_3").write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DataError) as err:
        load_cifar("cifar10", tmp_path / "c")
    assert not marker.exists(), "unpickling the CIFAR batch ran code"
    assert "data_batch_3" in str(err.value) and "\n" not in str(err.value)


def test_code_running_cifar_batch_through_the_cli_is_exit_2(tmp_path, monkeypatch, capsys):
    from helpers.studies import tiny_dict, to_toml

    from nas_harness.cli import main

    monkeypatch.chdir(tmp_path)
    clear_cache()
    marker = tmp_path / "PWNED"
    d = _cifar_dir(tmp_path / "cifar")
    (d / "test_batch").write_bytes(pickle.dumps(Evil(marker)))
    study = tiny_dict(tmp_path, data={"dataset": "cifar10", "root": "cifar", "train_subset": 20, "val_size": 10})
    Path("s.toml").write_text(to_toml(study))
    assert main(["search", "s.toml"]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert err.count("\n") == 1 and "test_batch" in err and "refusing to load global" in err
    assert not (tmp_path / "results").exists()


def test_zip_bomb_like_checkpoint_is_refused_quickly(tmp_path):
    """A .pt whose zip declares an enormous member still only warns (torch refuses it or we do)."""
    ck = tmp_path / "c.pt"
    with zipfile.ZipFile(ck, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00." + b"\x00" * 1_000_000)
    with pytest.warns(RuntimeWarning, match="ignored"):
        assert _load_checkpoint(ck, {}) is None


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_a_cache_entry_or_checkpoint_that_is_not_a_file_is_never_read(tmp_path: Path, kind: str) -> None:
    """Issue #21: a FIFO (would block for ever), /dev/zero (would never end) or a folder in the place of a trial
    cache entry is a miss, and in the place of a checkpoint it is ignored: nothing blocks."""
    import os

    def make(path: Path) -> None:
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dev-zero":
            path.symlink_to("/dev/zero")
        else:
            path.mkdir()

    make(tmp_path / "k.json")
    assert ResultCache(tmp_path).get("k", "A") is None
    make(tmp_path / "ck.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _load_checkpoint(tmp_path / "ck.pt", {}) is None
