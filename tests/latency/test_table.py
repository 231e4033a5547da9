"""The lookup table: keys, the device fingerprint, the JSON file (round trip, another device's table refused,
damaged files), and two processes filling one table at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nas_harness
from nas_harness.errors import ConfigError
from nas_harness.latency import (
    BlockKey,
    Entry,
    Fingerprint,
    LatencyPredictor,
    LatencySettings,
    LatencyTable,
    device_fingerprint,
    network_keys,
)

FP = Fingerprint("cpu", "Test CPU 9000", "AVX2", 1, "2.13.0+cpu")


def test_key_string_round_trips_for_every_kind_and_activation() -> None:
    keys = [BlockKey("stem", 3, 32, 224, 1, kernel=3, stride=2, act="relu"),
            BlockKey("mbconv", 24, 40, 56, 1, kernel=5, stride=2, expand=6, se=0.25, act="silu"),
            BlockKey("mbconv", 40, 40, 28, 4, kernel=3, stride=1, expand=4.5, se=None, residual=True, act="hswish"),
            BlockKey("head", 320, 1280, 7, 1, act="gelu"), BlockKey("classifier", 1280, 1000, 7, 1)]
    for k in keys:
        assert BlockKey.parse(str(k)) == k
    assert str(keys[1]) == "mbconv_i24_o40_k5_s2_e6_se0.25_res0_silu_r56_b1"
    assert len({str(k) for k in keys}) == len(keys)
    with pytest.raises(ValueError):
        BlockKey.parse("mbconv_i24_o40_kX")
    with pytest.raises(ConfigError, match="kind 'conv'"):
        BlockKey("conv", 1, 1, 1)


def test_network_keys_follow_the_network(tiny_arch, settings: LatencySettings) -> None:
    keys = network_keys(tiny_arch, settings)
    assert [k.kind for k in keys] == ["stem", "mbconv", "mbconv", "mbconv", "head", "classifier"]
    stem, ds, first, second, head, cls = keys
    assert (stem.cin, stem.cout, stem.size, stem.stride) == (3, 8, 16, 2)
    assert (ds.size, ds.expand, ds.se, ds.residual) == (8, 1.0, 0.25, True)  # stride 1, 8 -> 8: residual add
    assert (first.stride, first.size, first.residual, first.se) == (2, 8, False, None)
    assert (second.stride, second.size, second.cin, second.residual) == (1, 4, 16, True)
    assert (head.cin, head.cout, head.size) == (16, 32, 4) and (cls.cin, cls.cout) == (32, 10)
    # the batch is part of every key
    assert all(k.batch == 1 for k in keys)
    assert all(k.batch == 8 for k in network_keys(tiny_arch, LatencySettings(batch=8, resolution=16)))


def test_fingerprint_id_and_text() -> None:
    fp = device_fingerprint("cpu", 1)
    assert fp == device_fingerprint("cpu", 1) and fp.id == device_fingerprint("cpu", 1).id
    assert fp.device == "cpu" and fp.threads == 1 and fp.torch
    two = device_fingerprint("cpu", 2)
    assert two.id != fp.id and "-t2-" in two.id  # the thread count is part of the device
    assert "/" not in fp.id and " " not in fp.id
    assert Fingerprint.from_dict(fp.to_dict()) == fp
    assert "1 thread," in str(fp)


def test_unknown_device_is_one_line() -> None:
    for bad in ("gpu", "cuda:x", "tpu:0"):
        with pytest.raises(ConfigError, match=r"latency\.device = .* is invalid: allowed: 'cpu', 'cuda' or 'cuda:N'"):
            device_fingerprint(bad)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match=r"^latency\.device = 'cuda:0' but this machine has no CUDA device"):
            device_fingerprint("cuda:0")


def _table(path: Path | None) -> LatencyTable:
    t = LatencyTable(FP, path, memory_format="channels_last", memory_format_trial={"channels_last": 1.0})
    t.entries["classifier_i32_o10_r4_b1"] = Entry(0.05, 0.001, 3, "2025-01-01T00:00:00Z", 0.5)
    t.entries["stem_i3_o8_k3_s2_silu_r16_b1"] = Entry(0.1, 0.0, 3)
    t.fits["r16_b1_c10_i3"] = {"model": "affine", "intercept_ms": 0.2, "slope": 1.1, "n_networks": 2, "networks": []}
    return t


def test_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    t = _table(path)
    t.save()
    doc = json.loads(path.read_text())
    assert doc["format"] == "nas-harness latency table" and doc["version"] == 1
    assert doc["fingerprint"] == FP.to_dict() and doc["fingerprint_id"] == FP.id
    back = LatencyTable.open(path, FP)
    assert back.entries == t.entries and back.fits == t.fits and back.fingerprint == FP
    assert back.memory_format == "channels_last" and back.memory_format_trial == {"channels_last": 1.0}
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed into place
    assert path.stat().st_mode & 0o777 == 0o644  # readable by the others who share it


def test_table_of_another_device_is_refused_naming_file_and_both_fingerprints(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    _table(path).save()
    other = Fingerprint("cpu", "Test CPU 9000", "AVX2", 2, "2.13.0+cpu")
    with pytest.raises(ConfigError) as exc:
        LatencyTable.open(path, other)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    assert str(FP) in msg and str(other) in msg and "1 thread" in msg and "2 threads" in msg


@pytest.mark.parametrize("content", [
    b"\x00\x01garbage", b'{"format": "nas-harness latency table", "version": 1, "fingerp', b"[1, 2, 3]",
    b'{"format": "nas-harness latency table", "version": 99, "fingerprint": {}}',
    b'{"format": "nas-harness latency table", "version": 1, "fingerprint": {"device": "cpu"}}',
])
def test_damaged_table_is_one_line_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "t.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as exc:
        LatencyTable.open(path, FP)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and "damaged" in msg


def test_damaged_entry_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    _table(path).save()
    doc = json.loads(path.read_text())
    doc["entries"]["stem_i3_o8_k3_s2_silu_r16_b1"]["ms"] = "fast"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="damaged"):
        LatencyTable.read(path)
    doc["entries"] = {"not a key": {"ms": 1.0}}
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="damaged"):
        LatencyTable.read(path)


def test_writers_merge_instead_of_overwriting(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    a, b = LatencyTable.open(path, FP), LatencyTable.open(path, FP)  # both start from no file
    with a.locked():
        a.entries["stem_i3_o8_k3_s2_silu_r16_b1"] = Entry(0.1, 0.0, 3)
        a.save()
    with b.locked():  # b refreshes from the file under the lock: a's entry survives b's save
        b.entries["head_i16_o32_silu_r4_b1"] = Entry(0.2, 0.0, 3)
        with b.locked():  # re-entrant
            b.save()
    assert set(LatencyTable.read(path).entries) == {"stem_i3_o8_k3_s2_silu_r16_b1", "head_i16_o32_silu_r4_b1"}


_FILL = """
import json, sys
from nas_harness.latency import BlockKey, LatencyPredictor, LatencySettings
keys = [BlockKey.parse(k) for k in json.loads(sys.argv[2])]
s = LatencySettings(resolution=16, num_classes=10, repeats=3, warmup=1, memory_format="channels_last",
                    table=sys.argv[1], table_is_file=True)
p = LatencyPredictor(s)
sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
p.fill(keys)
print(p.measured)
"""


def test_two_processes_fill_one_table_without_losing_or_repeating_entries(tmp_path: Path) -> None:
    path = tmp_path / "shared.json"
    keys = [str(BlockKey("mbconv", 8, c, 8, 1, kernel=k, stride=1, expand=3, se=None, residual=c == 8))
            for c in (8, 16) for k in (3, 5, 7)] + [str(BlockKey("head", 8, c, 8, 1)) for c in (16, 24, 32)]
    root = str(Path(nas_harness.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    halves = [keys[:6], keys[3:]]  # overlapping: keys[3:6] are wanted by both
    procs = [subprocess.Popen([sys.executable, "-c", _FILL, str(path), json.dumps(h)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for h in halves]
    for p in procs:  # both imported torch and opened the (missing) table before either fills
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    measured = [int(o[0].strip().splitlines()[-1]) for o in outs]
    table = LatencyTable.read(path)  # valid JSON, every entry there
    assert set(table.entries) == set(keys)
    assert sum(measured) == len(keys)  # the lock made the second writer reuse the first one's entries
    assert all(e.ms > 0 and e.repeats == 3 for e in table.entries.values())


def test_predictor_refuses_a_table_file_of_another_device(tmp_path: Path, tiny_arch) -> None:
    path = tmp_path / "t.json"
    LatencyTable(Fingerprint("cuda", "Some GPU", "sm_90", None, "2.13.0", "12.8"), path).save()
    s = LatencySettings(resolution=16, table=str(path), table_is_file=True, repeats=3, warmup=0)
    with pytest.raises(ConfigError, match=r"was measured on cuda 'Some GPU'.* this run measures on cpu"):
        LatencyPredictor(s).predict(tiny_arch)


@pytest.mark.parametrize(("where", "value"), [
    ("fit", {"slope": 1.1}),  # no intercept
    ("fit", {"slope": "x", "intercept_ms": 0.0}),
    ("fit", {"slope": float("nan"), "intercept_ms": 0.0}),
    ("fit", {"slope": -5.0, "intercept_ms": 0.0}),
    ("fit", {"slope": 0.0, "intercept_ms": 0.0}),
    ("fit", {"slope": 1.0, "intercept_ms": 1e300}),
    ("fit", [1, 2]),
    ("fit", {"slope": 1.0, "intercept_ms": -1000.0}),  # would predict negative latencies
    ("fit", {"model": "poly", "slope": 1.0, "intercept_ms": 0.0}),
    ("fit", {"slope": 1.0, "intercept_ms": 0.0, "networks": [{"measured_ms": "x", "sum_ms": 1.0}]}),
    ("fit-key", "garbage"),
    ("fingerprint_id", "cpu-something-else"),
    ("entry", 1e308),
    ("entry", float("inf")),
    ("entry", -1.0),
    ("entry", 0.0),
    ("entry", "0.3"),
    ("entry", True),
    ("entry-extra", 1),
    ("entry-repeats", -3),
    ("key", "classifier_i-5_o1000_r7_b1"),
])
def test_damaged_fit_or_out_of_range_entry_is_refused(tmp_path: Path, where: str, value: object) -> None:
    """Every number a prediction is made of is checked on load, not only the entries' types."""
    path = tmp_path / "t.json"
    _table(path).save()
    doc = json.loads(path.read_text())
    entry = doc["entries"]["stem_i3_o8_k3_s2_silu_r16_b1"]
    if where == "fit":
        doc["fits"]["r16_b1_c10_i3"] = value
    elif where == "fit-key":
        doc["fits"][value] = doc["fits"]["r16_b1_c10_i3"]
    elif where == "fingerprint_id":
        doc["fingerprint_id"] = value
    elif where == "entry-extra":
        entry["surprise"] = value
    elif where == "entry-repeats":
        entry["repeats"] = value
    elif where == "key":
        doc["entries"][value] = entry
    else:
        entry["ms"] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as exc:
        LatencyTable.read(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg and "damaged" in msg
