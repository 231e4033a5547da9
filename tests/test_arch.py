"""Arch strings: exact round trips, B0 as data, BN settings, one-line errors naming the bad token, channel
arithmetic, and the layering of the modules at the ground (no import circle)."""

import json
import random
import subprocess
import sys

import pytest

from nas_harness.arch import (
    Arch,
    Stage,
    expanded_channels,
    make_divisible,
    parse_arch,
    se_squeeze_channels,
)
from nas_harness.errors import ConfigError
from nas_harness.presets import efficientnet, efficientnet_b0, resolve_arch
from nas_harness.space import SearchSpace

B0_STRING = (
    "stem_c32_s2,ds_r1_k3_s1_e1_c16_se0.25,ir_r2_k3_s2_e6_c24_se0.25,ir_r2_k5_s2_e6_c40_se0.25,"
    "ir_r3_k3_s2_e6_c80_se0.25,ir_r3_k5_s1_e6_c112_se0.25,ir_r4_k5_s2_e6_c192_se0.25,"
    "ir_r1_k3_s1_e6_c320_se0.25,head_c1280_do0.2_dp0.2_silu"
)


def test_b0_is_table_1_of_the_paper():
    b0 = efficientnet_b0()
    assert str(b0) == B0_STRING
    assert [(s.kernel, s.stride, s.expand, s.channels, s.repeats) for s in b0.stages] == [
        (3, 1, 1, 16, 1), (3, 2, 6, 24, 2), (5, 2, 6, 40, 2), (3, 2, 6, 80, 3), (5, 1, 6, 112, 3),
        (5, 2, 6, 192, 4), (3, 1, 6, 320, 1)]
    assert (b0.stem_channels, b0.stem_stride, b0.head_channels) == (32, 2, 1280)
    assert (b0.dropout, b0.drop_path, b0.act) == (0.2, 0.2, "silu")
    assert all(s.se == 0.25 and s.skip for s in b0.stages)
    assert b0.num_blocks == 16


def test_round_trip_random_archs():
    rng = random.Random(0)
    space = SearchSpace.default(widths=(0.5, 0.75, 1.0, 1.25), expands=(1, 2.5, 3, 4, 6))
    for _ in range(300):
        a = space.sample(rng)
        if rng.random() < 0.3:
            a = a.replace_stages(stages=[rng.randint(1, 7)], skip=False)
        if rng.random() < 0.3:
            a = a.replace(act=rng.choice(["relu", "hswish", "gelu"]), dropout=rng.choice([0.0, 0.35]),
                          drop_path=rng.choice([0.0, 0.125]), stem_stride=rng.choice([1, 2]))
        if rng.random() < 0.3:
            a = a.replace(bn_eps=rng.choice([1e-5, 1e-3, 1.5e-7, 0.01]), bn_momentum=rng.choice([0.1, 0.01, 1, 0.003]))
        s = str(a)
        assert parse_arch(s) == a
        assert str(parse_arch(s)) == s
        assert hash(parse_arch(s)) == hash(a)
        assert Arch.from_dict(a.to_dict()) == a


def test_equality_and_hash_by_value():
    a, b = efficientnet_b0(), parse_arch(B0_STRING)
    assert a == b and a is not b and len({a, b}) == 1
    assert a != a.replace_stages(se=None)
    with pytest.raises(AttributeError):
        a.stem_channels = 16  # frozen


def test_noskip_and_no_se_spelling():
    a = efficientnet_b0().replace_stages(se=None, skip=False)
    assert "se0.25" not in str(a)
    assert str(a).count("_noskip") == 7
    assert parse_arch(str(a)) == a
    # ir with e1 is the same network as ds; the canonical spelling is ds
    assert str(parse_arch(B0_STRING.replace("ds_r1", "ir_r1"))) == B0_STRING


def test_bn_settings_are_optional_head_options():
    b0 = efficientnet_b0()
    assert (b0.bn_eps, b0.bn_momentum) == (1e-5, 0.1)  # PyTorch's defaults: not written
    tf = b0.replace(bn_eps=1e-3, bn_momentum=0.01)
    assert str(tf) == B0_STRING.replace("_silu", "_silu_bneps0.001_bnmom0.01")
    assert parse_arch(str(tf)) == tf and str(parse_arch(str(tf))) == str(tf)
    assert str(b0.replace(bn_eps=1e-6)).endswith("_silu_bneps1e-06")
    assert parse_arch(B0_STRING.replace("_silu", "_silu_bnmom0.003")).bn_momentum == 0.003
    assert parse_arch(B0_STRING.replace("_silu", "_silu_bneps1e-3")).bn_eps == 1e-3  # exponent form accepted
    # written only when set: a default given explicitly is the same arch with the canonical (short) string
    assert str(parse_arch(B0_STRING.replace("_silu", "_silu_bneps0.00001_bnmom0.1"))) == B0_STRING
    assert Arch.from_dict({k: v for k, v in tf.to_dict().items()}) == tf
    old_spec = {k: v for k, v in b0.to_dict().items() if not k.startswith("bn_")}  # JSON written before
    assert Arch.from_dict(old_spec) == b0
    assert len({b0, tf}) == 2


def test_official_variants_strings():
    """B0-B4 strings are what they always were; B5-B7 carry torchvision's BN settings."""
    assert str(efficientnet("b0").arch) == B0_STRING
    assert str(efficientnet("b4").arch).endswith(",head_c1792_do0.4_dp0.2_silu")
    for name in ("b5", "b6", "b7"):
        assert str(efficientnet(name).arch).endswith("_do0.4_dp0.2_silu_bneps0.001_bnmom0.01".replace(
            "0.4", "0.4" if name == "b5" else "0.5"))
        assert parse_arch(str(efficientnet(name).arch)) == efficientnet(name).arch


@pytest.mark.parametrize("text, fragment", [
    ("", "non-empty"),
    ("stem_c32_s2,head_c1280_do0.2_dp0.2_silu", "token"),
    ("stm_c32_s2,ds_r1_k3_s1_e1_c16,head_c1280_do0.2_dp0.2_silu", "'stm_c32_s2'"),
    ("stem_c32_s2,xx_r1_k3_s1_e1_c16,head_c1280_do0.2_dp0.2_silu", "'xx_r1_k3_s1_e1_c16'"),
    ("stem_c32_s2,ir_r1_k4_s1_e6_c16,head_c1280_do0.2_dp0.2_silu", "odd kernel"),
    ("stem_c32_s2,ir_r1_k3_s3_e6_c16,head_c1280_do0.2_dp0.2_silu", "stride"),
    ("stem_c32_s2,ir_r1_k3_s1_e0.5_c16,head_c1280_do0.2_dp0.2_silu", "expand"),
    ("stem_c32_s2,ir_r1_k3_s1_e6,head_c1280_do0.2_dp0.2_silu", "missing option(s) c"),
    ("stem_c32_s2,ir_r1_k3_s1_e6_c16_zz3,head_c1280_do0.2_dp0.2_silu", "bad option 'zz3'"),
    ("stem_c32_s2,ds_r1_k3_s1_e6_c16,head_c1280_do0.2_dp0.2_silu", "use ir"),
    ("stem_c32_s2,ir_r1_k3_s1_e6_c16_se1.5,head_c1280_do0.2_dp0.2_silu", "se"),
    ("stem_c32_s2,ir_r1.5_k3_s1_e6_c16,head_c1280_do0.2_dp0.2_silu", "integer"),
    ("stem_c32_s2,ir_r1_k3_s1_e6_c16,head_c1280_do0.2_dp0.2_tanh", "silu, relu"),
    ("stem_c32_s2,ir_r1_k3_s1_e6_c16,head_c1280_do1.5_dp0.2_silu", "dropout"),
    ("stem_c32_s2,ir_r1_k3_s1_e6_c16,head_c1280_do0.2_dp0.2_silu_bneps0", "bn_eps"),
    ("stem_c32_s2,ir_r1_k3_s1_e6_c16,head_c1280_do0.2_dp0.2_silu_bnmom2", "bn_momentum"),
    ("stem_c32_s2,ir_r1_k3_s1_e6_c16,head_c1280_do0.2_dp0.2_silu_bnmom0.1_bneps0.001", "_bneps<num> and _bnmom"),
    ("stem_c32_s2,ir_r1_k3_s1_e6_c16,head_c1280_do0.2_dp0.2_silu_eps0.001", "_bneps<num> and _bnmom"),
])
def test_malformed_strings_name_the_token(text, fragment):
    with pytest.raises(ConfigError) as err:
        parse_arch(text)
    msg = str(err.value)
    assert fragment in msg
    assert "\n" not in msg


def test_stage_validation():
    with pytest.raises(ValueError, match="kernel"):
        Stage(repeats=1, kernel=2, stride=1, expand=6, channels=16)
    with pytest.raises(ValueError, match="repeats"):
        Stage(repeats=0, kernel=3, stride=1, expand=6, channels=16)


def test_channel_arithmetic():
    assert [make_divisible(v) for v in (32, 35.2, 36, 3, 1.1 * 1280)] == [32, 32, 40, 8, 1408]
    assert expanded_channels(16, 6) == 96 and expanded_channels(24, 2.5) == 64 and expanded_channels(40, 1) == 40
    assert se_squeeze_channels(40, 0.25) == 10 and se_squeeze_channels(3, 0.25) == 1


# Module -> the nas_harness modules it may load (itself and what is below it).  Importing a module must not
# load anything above it: then no two of these can import each other, directly or through a third.
LAYERS = {
    "arch": {"arch", "errors"},
    "scaling": {"arch", "errors", "scaling"},
    "presets": {"_config", "arch", "errors", "scaling", "presets"},  # arch files are read through _config.read_file
    "space": {"_config", "arch", "errors", "scaling", "presets", "space"},
    "flops": {"arch", "errors", "flops"},
    "model": {"arch", "errors", "model"},
}


def test_modules_at_the_ground_import_only_what_is_below_them():
    code = ("import json, sys, importlib; importlib.import_module(sys.argv[1]); print(json.dumps("
            "[sorted(m for m in sys.modules if m.startswith('nas_harness.')), 'torch' in sys.modules]))")
    for name, allowed in LAYERS.items():
        out = subprocess.run([sys.executable, "-c", code, f"nas_harness.{name}"], capture_output=True, text=True,
                             check=True).stdout
        loaded, torch_loaded = json.loads(out)
        assert {m.split(".", 1)[1] for m in loaded} == allowed, name
        assert torch_loaded == (name == "model"), name  # the analytic counter and the arch layers need no torch


def test_resolve_arch(tmp_path):
    assert resolve_arch("b0") == efficientnet_b0()
    assert resolve_arch("efficientnet-b0") == efficientnet_b0()
    assert resolve_arch(B0_STRING) == efficientnet_b0()
    f = tmp_path / "arch.txt"
    f.write_text(B0_STRING + "\n")
    assert resolve_arch(str(f)) == efficientnet_b0()
    j = tmp_path / "arch.json"
    j.write_text(json.dumps(efficientnet_b0().to_dict()))
    assert resolve_arch(str(j)) == efficientnet_b0()
    assert resolve_arch("b3").stages[0].channels == 24
    assert resolve_arch("efficientnet_b6") == efficientnet("b6").arch and resolve_arch(" B6 ").bn_eps == 1e-3
    with pytest.raises(ConfigError, match=r"b0\.\.b7"):
        resolve_arch("b9")


@pytest.mark.parametrize(("spec", "words"), [
    ({"stem_channels": 32}, "missing key(s)"),
    ("extra", "unknown key 'x'"),
    ("stages-int", "'stages' must be a list"),
    ([1, 2], "expected a JSON object"),
])
def test_arch_spec_errors_name_what_is_wrong(spec: object, words: str) -> None:
    from nas_harness.presets import efficientnet_b0

    d = efficientnet_b0().to_dict()
    spec = {"extra": {**d, "x": 1}, "stages-int": {**d, "stages": 3}}.get(spec, spec) if isinstance(spec, str) else spec
    with pytest.raises(ConfigError, match=r"^arch spec: ") as exc:
        Arch.from_dict(spec)
    assert words in str(exc.value)


def test_noskip_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="'noskip' given twice"):
        parse_arch("stem_c8_s1,ds_r1_k3_s1_e1_c8_noskip_noskip,head_c32_do0_dp0_silu")
