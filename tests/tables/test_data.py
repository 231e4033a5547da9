"""The packaged Accel-NASBench table: every record maps to our arch with the record's params (our analytic count)
and macs (thop's convention) exactly; the file is what the published tarball regenerates, byte for byte."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from nas_harness.flops import count_macs, count_params
from nas_harness.presets import efficientnet_b0
from nas_harness.tables import DATA_SHA256, accel_nasbench, accel_nasbench_space, record_arch
from nas_harness.tables._data import DATA_FILE
from nas_harness.tables._source import SOURCE_SHA256, build

REPO = Path(__file__).resolve().parents[2]


def _rows() -> tuple[dict[str, int], list[list]]:
    doc = json.loads(gzip.decompress(DATA_FILE.read_bytes()))
    return {c: i for i, c in enumerate(doc["columns"])}, doc["rows"]


def test_the_packaged_file_is_the_one_recorded_with_its_license_and_notice() -> None:
    assert hashlib.sha256(DATA_FILE.read_bytes()).hexdigest() == DATA_SHA256
    at, rows = _rows()
    assert len(rows) == 5138 and sorted(r[at["id"]] for r in rows) == list(range(5138))
    assert "Apache License" in (DATA_FILE.parent / "LICENSE").read_text()
    assert "Accel-NASBench" in (DATA_FILE.parent / "NOTICE").read_text()


def _tarball() -> Path | None:
    for root in (REPO.parent, REPO.parent.parent):  # a checkout beside the shared data folder (issue 27)
        p = root / "shared" / "data" / "accel-nasbench" / "anb_dataset_jsons.tar.gz"
        if p.is_file():
            return p
    return None


@pytest.mark.skipif(_tarball() is None, reason="the published tarball is not on this machine")
def test_the_file_regenerates_byte_for_byte_from_the_published_tarball(tmp_path: Path) -> None:
    assert build(_tarball()) == DATA_FILE.read_bytes()
    bad = tmp_path / "x.tar.gz"
    bad.write_bytes(b"not the tarball")
    with pytest.raises(ValueError, match=SOURCE_SHA256):
        build(bad)


def test_every_record_has_our_params_and_thops_macs_exactly() -> None:
    at, rows = _rows()
    for row in rows:
        arch = record_arch(row[at["choices"]])
        assert count_params(arch) == round(row[at["params_m"]] * 1e6), row[at["id"]]
        assert count_macs(arch, convention="thop").total == round(row[at["macs_m"]] * 1e6), row[at["id"]]
        # the published numbers carry 6 decimals of millions: the rounding above is exact, not a tolerance
        assert abs(row[at["macs_m"]] * 1e6 - round(row[at["macs_m"]] * 1e6)) < 1e-3


def test_thop_convention_differs_from_fvcore_by_bn_and_pool_outputs_only() -> None:
    b0 = efficientnet_b0()
    fv, th = count_macs(b0), count_macs(b0, convention="thop")
    assert th.by_op["conv"] == fv.by_op["conv"] and th.by_op["linear"] == fv.by_op["linear"]
    assert th.by_op["batch_norm"] == 2 * fv.by_op["batch_norm"]
    se_blocks = sum(st.repeats for st in b0.stages)
    assert th.by_op["adaptive_avg_pool2d"] > fv.by_op["adaptive_avg_pool2d"] and se_blocks == 16
    with pytest.raises(ValueError, match="convention 'flops'"):
        count_macs(b0, convention="flops")


def test_table_rows_are_the_records_values_and_repeats_are_averaged() -> None:
    at, rows = _rows()
    table = accel_nasbench()
    by_arch: dict[str, list[list]] = {}
    for row in rows:
        by_arch.setdefault(str(record_arch(row[at["choices"]])), []).append(row)
    assert len(table) == len(by_arch) == 5125
    assert sum(len(v) > 1 for v in by_arch.values()) == 13
    for arch, recs in by_arch.items():
        got = table.row(table.index(arch))
        assert got["record_ids"] == [r[at["id"]] for r in recs]
        assert got["val_acc"] == float(np.mean([r[at["val_top1"]] for r in recs])) / 100.0
        if len(recs) == 1:
            r = recs[0]
            assert got["val_acc"] == r[at["val_top1"]] / 100.0
            for col in ("throughput_a100", "latency_zcu102", "throughput_tpuv3"):
                assert got[col] == r[at[col]]  # None where the record has no measurement
        assert got["params"] == round(recs[0][at["params_m"]] * 1e6)
        assert got["macs_thop"] == round(recs[0][at["macs_m"]] * 1e6)
    space = accel_nasbench_space()
    assert all(record_arch(r[at["choices"]]) in space for r in rows[:200])
    assert table.index(efficientnet_b0()) is None  # B0 itself was not trained in the benchmark
