from __future__ import annotations

import csv
from html.parser import HTMLParser
from pathlib import Path

import pytest

from nas_harness.cli import main
from nas_harness.report import reference_table, write_report
from nas_harness.report.study_report import info_command
from nas_harness.results import pareto_front, study_frame


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.imgs: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.imgs.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _md_table(md: str, header_start: str) -> list[list[str]]:
    lines = md.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith(header_start))
    rows = []
    for ln in lines[i + 2:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip().strip("`") for c in ln.strip("|").split(" | ")])
    return rows


@pytest.mark.slow
def test_report_tables_figures_and_reproduction(study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    paths = write_report(study_dir, out_dir=out)
    df = study_frame(study_dir)
    front = pareto_front(df).sort_values("front_rank")
    md = paths.markdown.read_text()
    rows = _md_table(md, "| rank | trial |")
    assert [r[1] for r in rows] == front["name"].tolist()
    assert [r[-1] for r in rows] == front["arch"].tolist()
    assert [float(r[2]) for r in rows] == pytest.approx((front["val_acc"] * 100).round(2).tolist())
    assert [float(r[3]) for r in rows] == pytest.approx((front["macs"] / 1e6).round(2).tolist())
    assert "test acc %" not in md.split("## Pareto")[1].splitlines()[4]  # no test accuracy in this study
    refs = _md_table(md, "| reference |")
    assert [r[0] for r in refs] == ["b0", "b0-w0.5"]
    # the verdict names the reference and whether the search beat it
    assert "Reference b0 (" in md and "| study | fake |" in md and "| kind | multi |" in md
    assert info_command(front.iloc[0]["arch"]) in md
    assert "evaluate_test=True" in md and "run_trial(spec)" in md
    # HTML carries the same tables and the PNG figures, relative to the report
    parser = _Tables()
    parser.feed(paths.html.read_text())
    pareto_html = next(t for t in parser.tables if t[0][:2] == ["rank", "trial"])
    assert [r[1] for r in pareto_html[1:]] == front["name"].tolist()
    assert "figures/accuracy_vs_macs.png" in parser.imgs
    assert all((out / src).is_file() for src in parser.imgs)
    with open(paths.tables[0]) as f:
        assert sum(1 for _ in csv.DictReader(f)) == len(df)
    assert paths.tables[1].suffix == ".parquet"


def test_reference_table_says_who_dominates(study_dir: Path) -> None:
    df = study_frame(study_dir)
    t = reference_table(df)
    front = pareto_front(df)
    col = t.header.index("dominated by")
    for row in t.rows:
        ref = df[df["name"] == row[0]].iloc[0]
        expected = front[(front["macs"] <= ref["macs"]) & (front["val_acc"] >= ref["val_acc"])]["name"].tolist()
        assert row[col] == (", ".join(expected) or "none")


def test_cli_report_without_figures(study_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(study_dir), "--no-figures", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[:2] == [str(tmp_path / "report.md"), str(tmp_path / "report.html")]
    assert "## Figures" not in (tmp_path / "report.md").read_text()
    assert main(["report", str(tmp_path / "nothing-here")]) == 2


def test_report_elsewhere_still_names_the_study(study_dir: Path, tmp_path: Path) -> None:
    paths = write_report(f"sqlite:///{study_dir / 'study.db'}", "fake", out_dir=tmp_path / "elsewhere",
                         figures=False)
    md = paths.markdown.read_text()
    assert f"nas-harness export {study_dir} --by pareto --rank 1" in md
    assert main(["export", str(study_dir), "--study", "fake", "--rank", "1", "--out", str(tmp_path / "x")]) == 0
