"""The report reads like a lab notebook page: settings as key/value tables (the objective's T and w, the
space, the run's limits), arch strings that wrap only between blocks, commands without horizontal scrolling,
and a word on why two parameter counts of one arch differ."""

from __future__ import annotations

import re
import subprocess

import pytest
from helpers.fakes import make_study

from nas_harness.report import write_report
from nas_harness.report.document import code_html
from nas_harness.report.settings import objective_rows, value_text
from nas_harness.report.study_report import arch_chunks, info_command

ARCH = ("stem_c8_s2,ds_r1_k3_s1_e1_c8_se0.25,ir_r1_k3_s2_e6_c8_se0.25,ir_r1_k5_s2_e6_c16_se0.25,"
        "ir_r2_k3_s2_e6_c24_se0.25,ir_r2_k5_s1_e6_c32_se0.25,ir_r2_k5_s2_e6_c48_se0.25,ir_r1_k3_s1_e6_c80_se0.25,"
        "head_c320_do0.2_dp0.2_silu")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    import optuna

    root = tmp_path_factory.mktemp("layout") / "fake"
    root.mkdir()
    study = make_study(f"sqlite:///{root / 'study.db'}", n=8, failures=0, pruned=0)
    cfg = dict(study.user_attrs["config"])
    cfg.update(base="b0", base_width=0.25, base_depth=0.5,
               space={"kernels": [3, 5], "expands": [1, 3, 6], "se": [True, False], "repeats_delta": 1},
               objective={"kind": "multi", "cost": "macs", "max_macs": 60e6},
               run={"n_trials": 14, "timeout_s": 480.0, "backend": "local", "max_failures": 0, "storage": "x"})
    study.set_user_attr("config", cfg)
    assert optuna.load_study(study_name="fake", storage=f"sqlite:///{root / 'study.db'}").user_attrs["config"]
    paths = write_report(root, figures=False)
    return paths.markdown.read_text(), paths.html.read_text()


def test_settings_are_key_value_tables(report: tuple[str, str]) -> None:
    md, _ = report
    settings = md.split("## Settings")[1].split("## Result at a glance")[0]
    assert "{" not in settings and "}" not in settings  # no raw JSON dicts
    for row in ("| base_width | 0.25 |", "| base_depth | 0.5 |", "| kernels | 3, 5 |", "| expands | 1, 3, 6 |",
                "| stem_stride | 1 |", "| run.n_trials | 14 |", "| run.timeout_s | 480 s |",
                "| max_macs | 60.00 MMACs |", "| dataset | fashion_mnist |", "| optimizer | sgd |",
                "| kind | nsgaii |"):
        assert row in settings, row
    assert "### Search space ([space])" in settings and "### Training recipe ([train])" in settings


def test_reward_objective_states_target_and_exponent() -> None:
    rows = dict(objective_rows({"kind": "reward", "target_macs": 35e6, "constraint": "soft"}, "macs"))
    assert rows["target T"] == "35.00 MMACs" and rows["exponent w"] == "-0.07"
    rows = dict(objective_rows({"kind": "reward", "cost": "latency", "target_ms": 12.5, "constraint": "hard"},
                               "latency_ms"))
    assert rows["target T"] == "12.5 ms" and rows["exponent w"] == "0 if cost <= T, else -1"
    assert value_text([True, False]) == "true, false" and value_text(0.004) == "0.004"


def test_parameter_counts_are_explained(report: tuple[str, str]) -> None:
    md, _ = report
    assert "deployed network: 10 classes, 3 input channels" in md  # the fake study counts at 10 classes
    assert "the data set's 10 classes and 1 input channel" in md


def test_arch_strings_wrap_only_between_blocks(report: tuple[str, str]) -> None:
    _, page = report
    assert "word-break:keep-all" in page and ".nb{white-space:nowrap}" in page
    cells = re.findall(r"<td><code>(.*?)</code></td>", page)
    assert cells
    for cell in cells:
        spans = re.findall(r"<span class='nb'>(.*?)</span>", cell)
        assert cell == "<wbr>".join(f"<span class='nb'>{s}</span>" for s in spans)  # a break only after commas
        assert all("," not in s[:-1] for s in spans)
    html = code_html("a,b_c,d")
    assert html == "<span class='nb'>a,</span><wbr><span class='nb'>b_c,</span><wbr><span class='nb'>d</span>"


def test_info_command_needs_no_scrolling_and_gives_the_arch_back() -> None:
    cmd = info_command(ARCH)
    lines = cmd.splitlines()
    assert max(len(ln) for ln in lines) <= 80 and lines[-1] == 'nas-harness info "$arch"'
    assert "".join(arch_chunks(ARCH)) == ARCH and all(len(c) <= 64 for c in arch_chunks(ARCH))
    script = "\n".join(lines[:-1]) + '\nprintf %s "$arch"'
    assert subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout == ARCH
    assert info_command("b0") == "nas-harness info 'b0'"


def test_report_commands_fit_without_scrolling(report: tuple[str, str]) -> None:
    md, _ = report
    blocks = re.findall(r"```(?:bash|sh|python)\n(.*?)```", md, flags=re.S)
    assert blocks
    too_long = [ln for b in blocks for ln in b.splitlines() if len(ln) > 100 and "nas-harness" in ln]
    assert not too_long
