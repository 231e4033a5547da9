"""Issue #21: the compiled kernel library in the user's cache is code, so a library planted there (or changed
after it was built) is never loaded: its constructor would write a marker file, and the marker never appears.
The library is loaded only from a private folder, owned by this user, with the SHA-256 its builder recorded."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nas_harness.kernels import _native

EVIL_C = """
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {{
    FILE *f = fopen("{marker}", "w");
    if (f) {{ fputs("pwned", f); fclose(f); }}
}}
void bn_act_forward_train(void) {{}}
"""
@pytest.fixture
def cc(monkeypatch: pytest.MonkeyPatch) -> str:
    """The compiler, with quick flags (the checks do not depend on them) and a fresh per-process state."""
    cc = _native._compiler()
    if cc is None:
        pytest.skip("no C compiler here")
    monkeypatch.setattr(_native, "_FLAGS", ["-O0", "-fopenmp", "-fPIC", "-shared"])
    monkeypatch.delenv("NAS_HARNESS_NATIVE", raising=False)
    return cc


def plant(cc: str, path: Path, marker: Path) -> bytes:
    src = path.with_suffix(".c")
    src.write_text(EVIL_C.format(marker=marker))
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(path), str(src)], check=True, capture_output=True, timeout=120)
    src.unlink()
    return path.read_bytes()


def load(cache: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """What a new process would do: look for the library in ``cache``, build or load it (the planted
    constructor, if it were loaded, would write the marker in this very process)."""
    import warnings

    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setattr(_native, "_state", {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = _native.library()
    return "loaded" if lib is not None else f"none: {_native.unavailable_reason()}"


def expected_path(cache: Path, cc: str) -> Path:
    return cache / "nas-harness" / "native" / f"kernels-{_native._library_key(cc)}.so"


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("how", ["planted-by-name", "planted-with-forged-checksum-in-open-folder",
                                 "symlink-to-planted", "planted-group-writable-with-checksum",
                                 "replaced-after-build"])
def test_a_planted_library_is_never_loaded(tmp_path: Path, cc: str, how: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cache, marker = tmp_path / "cache", tmp_path / "MARKER"
    lib = expected_path(cache, cc)
    lib.parent.mkdir(parents=True, mode=0o700)
    os.chmod(lib.parent, 0o700)
    if how == "replaced-after-build":
        assert load(cache, monkeypatch).startswith("loaded")  # a genuine build and its checksum
        plant(cc, lib, marker)  # then the file is swapped: the recorded checksum no longer matches
    elif how == "symlink-to-planted":
        elsewhere = tmp_path / "elsewhere.so"
        data = plant(cc, elsewhere, marker)
        lib.symlink_to(elsewhere)
        lib.with_name(lib.name + ".sha256").write_text(_digest(data))
    else:
        data = plant(cc, lib, marker)
        if how != "planted-by-name":
            lib.with_name(lib.name + ".sha256").write_text(_digest(data))
        if how == "planted-with-forged-checksum-in-open-folder":
            os.chmod(lib.parent, 0o777)  # anyone could have written both files
        if how == "planted-group-writable-with-checksum":
            os.chmod(lib, 0o775)
    out = load(cache, monkeypatch)
    assert not marker.exists(), f"the planted library ran ({how})"
    assert out.startswith("loaded"), out  # a genuine build replaced it (or a private temporary one was used)


def test_a_genuine_build_is_reused_from_its_private_folder(tmp_path: Path, cc: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    assert load(cache, monkeypatch).startswith("loaded")
    lib = expected_path(cache, cc)
    stamp = lib.stat().st_mtime_ns
    assert oct(lib.parent.stat().st_mode & 0o777) == "0o700"
    assert load(cache, monkeypatch).startswith("loaded")
    assert lib.stat().st_mtime_ns == stamp  # verified and loaded, not rebuilt


@pytest.mark.parametrize("value", ["2", "maybe", "of"])
def test_an_unrecognised_native_setting_is_one_line(value: str, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    from nas_harness.cli import main

    monkeypatch.setenv("NAS_HARNESS_NATIVE", value)
    assert main(["info", "b0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NAS_HARNESS_NATIVE" in err[0] and repr(value) in err[0], err
