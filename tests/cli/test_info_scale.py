"""`nas-harness info` / `scale`: real numbers out, one-line errors and exit code 2 on bad input."""

import pytest

from nas_harness.cli import main


def test_info_b0(capsys):
    assert main(["info", "b0"]) == 0
    out = capsys.readouterr().out
    assert "5,288,548" in out and "401,659,392" in out
    assert "ir_r4_k5_s2_e6_c192_se0.25" in out and "7x7" in out


def test_info_with_fvcore_and_options(capsys):
    assert main(["info", "b0", "--resolution", "64", "--num-classes", "10", "--fvcore"]) == 0
    out = capsys.readouterr().out
    assert "4,020,358" in out and "agrees" in out


def test_scale_table(capsys):
    assert main(["scale", "b0", "--phi", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert "5,288,548" in out and "258" in out
    assert main(["scale", "b0", "--named"]) == 0
    out = capsys.readouterr().out
    assert "66,347,960" in out and "600" in out


@pytest.mark.parametrize("argv, fragment", [
    (["info", "b9"], "b0..b7"),
    (["info", "stem_c32_s2,ir_r1_k4_s1_e6_c16,head_c1280_do0.2_dp0.2_silu"], "odd kernel"),
    (["info", "b0", "--resolution", "0"], "--resolution"),
    (["scale", "b0", "--alpha", "0.5"], "alpha"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_argparse_errors_exit_2(capsys):
    assert main(["info"]) == 2
    assert main(["info", "b0", "--resolution", "abc"]) == 2
    assert capsys.readouterr().err.count("\n") == 2  # one line each
