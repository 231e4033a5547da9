"""Building and loading the C kernels: cached per source and machine, and a clean fallback without a compiler."""

from __future__ import annotations

import pytest

from nas_harness import native


def test_build_is_cached_and_keyed_by_the_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cc = native._compiler()
    assert cc is not None
    first = native._build(cc)
    assert first.parent == tmp_path / "nas-harness" / "native" and first.suffix == ".so"
    stamp = first.stat().st_mtime_ns
    assert native._build(cc) == first and first.stat().st_mtime_ns == stamp  # not rebuilt
    assert [p.name for p in first.parent.iterdir()] == [first.name]  # no temporary left behind
    source = tmp_path / "extra.c"
    source.write_text("void nas_harness_test_symbol(void) {}\n")
    monkeypatch.setattr(native, "_SOURCES", [*native._SOURCES, source])
    assert native._build(cc) != first  # a changed source is a new library


def test_without_a_compiler_the_stock_path_is_used_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # exists, but compiles nothing
    monkeypatch.setattr(native, "_state", {})
    with pytest.warns(RuntimeWarning, match="fused CPU kernels unavailable, using stock PyTorch ops"):
        assert native.library() is None
    assert native.library() is None  # decided once per process: no second warning, no second try
    assert not native.available()


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv(native.ENV_VAR, "0")
    assert native.library() is None
    monkeypatch.setenv(native.ENV_VAR, "1")
    assert native.library() is not None
