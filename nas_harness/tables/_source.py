"""Regenerate the packaged Accel-NASBench table from the published tarball (reproducible, byte for byte).

Usage::

    python -m nas_harness.tables._source anb_dataset_jsons.tar.gz [OUT]

The tarball is ``anb_dataset/anb_dataset_jsons.tar.gz`` of the public repository ``afzalxo/Accel-NASBench``
(commit 42603572d530310e6bac7191d00cf45625a6b197, sha256 below; Apache-2.0).  The output keeps only what the
package uses, one row per record: the record id, the 28 architecture choices, ``val_top1``, ``params`` and
``macs`` (millions, as published) and the mean throughput/latency per platform, written as gzip-compressed JSON
with a zero timestamp so the same tarball always gives the same bytes.  Reading it runs no code.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import sys
import tarfile
from pathlib import Path

from nas_harness._config import write_output

SOURCE_SHA256 = "3520992d42e368b7c08c99fc3f6612855b5b366bf98668a7f19d49f3131aa4ae"
SOURCE = ("Accel-NASBench (Ahmad et al., DAC 2024), github.com/afzalxo/Accel-NASBench, "
          "anb_dataset/anb_dataset_jsons.tar.gz at commit 42603572d530310e6bac7191d00cf45625a6b197")
#: Mean-throughput (images/s) and mean-latency (ms) columns kept, named ``<metric>_<platform>``.
PERF_COLUMNS = ("throughput_tpuv2", "throughput_tpuv3", "throughput_a100", "throughput_3090",
                "throughput_zcu102", "throughput_vck190", "latency_zcu102", "latency_vck190")
COLUMNS = ("id", "choices", "val_top1", "params_m", "macs_m", *PERF_COLUMNS)
N_STAGES = 7
#: Per stage, in this order: expansion ratio, kernel, layers (repeats), SE (0/1); one digit each.
CHOICE_KEYS = ("e", "k", "l", "se")


def _choices(arch: dict) -> str:
    digits = []
    for i in range(N_STAGES):
        for key in CHOICE_KEYS:
            v = arch[f"block{i}_{key}"]
            v = int(v) if key != "se" else int(bool(v))
            if not 0 <= v <= 9:
                raise ValueError(f"block{i}_{key} = {v} does not fit one digit")
            digits.append(str(v))
    return "".join(digits)


def _row(rid: int, rec: dict) -> list:
    perf = rec["platform_perf"]
    row = [rid, _choices(rec["architecture"]), rec["metrics"]["val_top1"], rec["model_info"]["params"],
           rec["model_info"]["macs"]]
    for col in PERF_COLUMNS:
        metric = col.split("_")[0]
        row.append(perf[col][f"{metric}_mean"])
    return row


def build(tarball: str | Path) -> bytes:
    """The packaged file's bytes from the published tarball (ValueError if its sha256 is not the expected)."""
    raw = Path(tarball).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCE_SHA256:
        raise ValueError(f"{tarball}: sha256 {digest}, expected {SOURCE_SHA256}")
    rows = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        for member in tar:
            m = re.fullmatch(r"(?:\./)?anb_dataset_jsons/result_(\d+)\.json", member.name)
            if not member.isfile() or m is None:
                continue
            rows.append(_row(int(m.group(1)), json.loads(tar.extractfile(member).read())))
    rows.sort(key=lambda r: r[0])
    doc = {"source": SOURCE, "source_sha256": SOURCE_SHA256, "license": "Apache-2.0 (see LICENSE and NOTICE)",
           "columns": list(COLUMNS), "choice_keys": list(CHOICE_KEYS), "rows": rows}
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(text)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python -m nas_harness.tables._source anb_dataset_jsons.tar.gz [OUT]", file=sys.stderr)
        return 2
    out = Path(args[1]) if len(args) == 2 else Path(__file__).with_name("data") / "accel_nasbench.json.gz"
    data = build(args[0])
    with write_output(out, "wb") as f:
        f.write(data)
    print(f"{out}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
