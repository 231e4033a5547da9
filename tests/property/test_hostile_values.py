"""Property tests (#12): random strings to the arch parser and random values of every type to every key of
every study-file and ablation-file table.  The only outcomes allowed are a valid object or the harness's own
one-line ConfigError: never another exception, never a hang (each example runs under a generous deadline).
"""

from __future__ import annotations

import math
import string
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from nas_harness._config import read_toml
from nas_harness.ablation.config import AblationConfig, parse_ablation
from nas_harness.arch import Arch, parse_arch
from nas_harness.errors import ConfigError
from nas_harness.study.config import SECTIONS, StudyConfig, validate

SETTINGS = settings(max_examples=300, deadline=timedelta(seconds=20), derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# ------------------------------------------------------------------------------------------ strategies

_WORDS = ["b0", "b7", "auto", "none", "cpu", "cuda", "cuda:0", "local", "ray", "tpe", "grid", "nsgaii", "random",
          "median", "sha", "hyperband", "asha", "reward", "budget", "multi", "soft", "hard", "custom", "macs",
          "params", "sgd", "adamw", "rmsprop", "cosine", "onecycle", "constant", "crop", "flip", "cutout",
          "fashion_mnist", "cifar10", "cifar100", "folder", "synthetic", "resize", "pad", "silu", "relu",
          "sqlite:///x.db", "journal:", "journal:x.log", "postgresql://u:pw@h/db", "x", "", " ", "nan", "inf",
          "baseline", "no_se", "no_skip", "neither", "base", "base-nose", "b0-w0.5",
          "stem_c32_s2,ir_r1_k3_s1_e6_c16,head_c64_do0.2_dp0.2_silu", "\x00", "a\nb", "\x1b[31m", "é" * 70,
          "x" * 300]
_NUMBERS = [0, 1, -1, 2, 3, 7, 10, 100, 2**31, 2**32, 2**63, -(2**63), 10**30, 0.0, -0.0, 0.5, 1.5, 1e-300, 1e300,
            math.nan, math.inf, -math.inf, 1e15, 4294967295, 4294967296]

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-(2**80), max_value=2**80)
           | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(_NUMBERS)
           | st.text(max_size=40) | st.sampled_from(_WORDS)
           | st.text(alphabet=st.characters(max_codepoint=0x7f), max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8) | st.sampled_from(_WORDS[:20]), inner, max_size=4),
                      max_leaves=12)


def _keys() -> list[tuple[str, str]]:
    """(section, key) of every study-file key ('' = top level), from the models themselves."""
    out = []
    for section, model in SECTIONS.items():
        for key in model.model_fields:
            if section == "" and key in SECTIONS:
                continue  # a table of its own, fuzzed key by key (and as a whole below)
            out.append((section, key))
    return out


STUDY_KEYS = _keys()
BASE = {"name": "fuzz", "base_width": 0.25, "base_depth": 0.34,
        "data": {"dataset": "synthetic", "resolution": 16}}


def _one_line_config_error(call: Any) -> Any:
    """The result of ``call()``, or None when it raised the harness's own one-line ConfigError."""
    try:
        return call()
    except ConfigError as exc:
        msg = str(exc)
        assert msg.strip(), "empty ConfigError"
        assert "\n" not in msg and "\r" not in msg, f"multi-line ConfigError: {msg!r}"
        assert len(msg) < 2000, f"ConfigError of {len(msg)} characters"
        return None


# ------------------------------------------------------------------------------------------ arch strings

_ARCH_PIECES = ["stem_c32_s2", "stem_c8_s1", "ds_r1_k3_s1_e1_c16_se0.25", "ir_r2_k5_s2_e6_c24", "ir_r1_k3_s1_e6_c16",
                "ir_r1_k3_s1_e6_c16_noskip", "head_c1280_do0.2_dp0.2_silu", "head_c64_do0_dp0_relu", "_", ",", "se",
                "k", "r", "e", "c", "s", "0", "1", "9" * 30, "0.5", "1e5", "-1", ".", " ", "noskip", "ir", "ds",
                "stem", "head", "9" * 5000, "1" + "0" * 400]
arch_texts = (st.text(max_size=200)
              | st.text(alphabet=string.ascii_lowercase + string.digits + "_,. ", max_size=120)
              | st.lists(st.sampled_from(_ARCH_PIECES), max_size=12).map("".join)
              | st.lists(st.sampled_from(_ARCH_PIECES[:8]), min_size=1, max_size=6).map(",".join))


@SETTINGS
@given(arch_texts)
@example("stem_c32_s2,ir_r" + "9" * 5000 + "_k3_s1_e6_c16,head_c64_do0_dp0_silu")  # int() digit limit
@example("stem_c32_s2,ir_r1_k3_s1_e1" + "0" * 400 + "_c16,head_c64_do0_dp0_silu")  # an expansion of inf
@example("stem_c32_s2,ir_r1_k3_s1_e6_c16,head_c64_do0." + "1" * 5000 + "_dp0_silu")
@example("x" * 400)
def test_arch_parser_gives_an_arch_or_one_config_error(text: str) -> None:
    arch = _one_line_config_error(lambda: parse_arch(text))
    if arch is not None:
        assert isinstance(arch, Arch)
        assert parse_arch(str(arch)) == arch  # a valid object round-trips


# ------------------------------------------------------------------------------------------ study files

@SETTINGS
@given(key=st.sampled_from(STUDY_KEYS), value=values)
def test_every_study_key_with_any_value(key: tuple[str, str], value: Any) -> None:
    section, name = key
    d: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    if section:
        d.setdefault(section, {})[name] = value
    else:
        d[name] = value
    cfg = _one_line_config_error(lambda: validate(d))
    if cfg is not None:
        assert isinstance(cfg, StudyConfig)
        assert validate(cfg.to_dict()) == cfg  # a valid file's normalised form is valid and equal


@SETTINGS
@given(section=st.sampled_from([s for s in SECTIONS if s]), value=values)
def test_every_study_table_replaced_by_any_value(section: str, value: Any) -> None:
    d = dict(BASE, **{section: value})
    cfg = _one_line_config_error(lambda: validate(d))
    assert cfg is None or isinstance(cfg, StudyConfig)


@SETTINGS
@given(table=st.dictionaries(st.sampled_from(["kernels", "expands", "se", "widths", "repeats_delta", "se_ratio",
                                              "stages", "x"]), values, max_size=3),
       stages=st.dictionaries(st.sampled_from(["1", "2", "7", "0", "8", "x", "01"]),
                              st.dictionaries(st.sampled_from(["kernels", "expands", "se", "repeats", "widths", "y"]),
                                              values, max_size=2), max_size=2))
@example(table={"repeats_delta": 2**63}, stages={})  # exhausted memory before the bound
@example(table={"expands": [math.inf]}, stages={})  # was accepted
@example(table={}, stages={"\u00b2": {"kernels": [3]}})  # a digit that int() refuses
def test_space_table_with_any_values(table: dict[str, Any], stages: dict[str, Any]) -> None:
    space = dict(table)
    if stages:
        space["stages"] = stages
    cfg = _one_line_config_error(lambda: validate(dict(BASE, space=space)))
    assert cfg is None or isinstance(cfg, StudyConfig)


# ------------------------------------------------------------------------------------------ ablation files

ABLATION_BASE = {"name": "fuzz", "base": "stem_c8_s1,ds_r1_k3_s1_e1_c8_se0.25,ir_r2_k3_s2_e3_c16_se0.25,"
                                      "head_c32_do0_dp0_silu", "variants": ["baseline", "no_se"], "seeds": 2,
                 "data": {"dataset": "synthetic", "resolution": 16}}


def _ablation_keys() -> list[tuple[str, str]]:
    out = []
    for key, field in AblationConfig.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and hasattr(model, "model_fields"):
            out += [(key, k) for k in model.model_fields]
        else:
            out.append(("", key))
    return out


ABLATION_KEYS = _ablation_keys()


@SETTINGS
@given(key=st.sampled_from(ABLATION_KEYS), value=values)
def test_every_ablation_key_with_any_value(key: tuple[str, str], value: Any) -> None:
    section, name = key
    d: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in ABLATION_BASE.items()}
    if section:
        d.setdefault(section, {})[name] = value
    else:
        d[name] = value
    cfg = _one_line_config_error(lambda: parse_ablation(d))
    assert cfg is None or isinstance(cfg, AblationConfig)


@SETTINGS
@given(name=st.sampled_from(["k5", "x", "baseline", "bad name", "é"]),
       table=st.dictionaries(st.sampled_from(["description", "from", "arch", "overrides", "se_stages", "act",
                                              "drop_path", "zzz"]), values, max_size=3),
       overrides=st.lists(st.dictionaries(st.sampled_from(["stage", "override", "q"]), values, max_size=2),
                          max_size=2))
def test_variant_tables_with_any_values(name: str, table: dict[str, Any], overrides: list[Any]) -> None:
    if overrides:
        table = dict(table, overrides=overrides)
    d = dict(ABLATION_BASE, variants=["baseline", name], variant={name: table})
    cfg = _one_line_config_error(lambda: parse_ablation(d))
    assert cfg is None or isinstance(cfg, AblationConfig)


# ------------------------------------------------------------------------------------------ files

@SETTINGS
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_bytes_as_a_study_file(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("toml") / "study.toml"
    path.write_bytes(raw)
    d = _one_line_config_error(lambda: read_toml(path, "study file"))
    assume(d is not None)
    cfg = _one_line_config_error(lambda: validate(d))
    assert cfg is None or isinstance(cfg, StudyConfig)
