"""The set-up a new user meets first: ``.ci/apt-install`` waits for another apt process's lock, and
pyproject.toml's metadata is read by setuptools without deprecation warnings."""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fake_bin(tmp_path: Path, lock_failures: int) -> tuple[Path, Path]:
    """A PATH folder with apt-get (failing on a held lock ``lock_failures`` times), sudo and sleep stand-ins
    that log their calls."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    counter = tmp_path / "count"
    counter.write_text("0")
    scripts = {
        "apt-get": f"""#!/usr/bin/env bash
echo "apt-get $*" >> {log}
if [[ " $* " == *" update "* ]]; then
  n=$(cat {counter}); echo $((n + 1)) > {counter}
  if [ "$n" -lt {lock_failures} ]; then
    echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 42 (apt-get)" >&2; exit 100
  fi
fi
exit 0
""",
        "sudo": '#!/usr/bin/env bash\nexec "$@"\n',
        "sleep": f'#!/usr/bin/env bash\necho "sleep $*" >> {log}\n',
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return bin_dir, log


def _run(bin_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(ROOT / ".ci/apt-install"), "dataset-fashion-mnist"], env=env,
                          capture_output=True, text=True, timeout=60)


def test_apt_install_waits_for_a_held_lock(tmp_path: Path) -> None:
    bin_dir, log = _fake_bin(tmp_path, lock_failures=3)
    done = _run(bin_dir)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert sum("update" in c for c in calls) == 4 and sum(c.startswith("sleep") for c in calls) == 3
    install = [c for c in calls if " install " in c]
    assert install and "DPkg::Lock::Timeout=600" in install[0] and "dataset-fashion-mnist" in install[0]
    assert "waiting for another apt process" in done.stderr


def test_apt_install_fails_at_once_on_another_error(tmp_path: Path) -> None:
    bin_dir, log = _fake_bin(tmp_path, lock_failures=0)
    (bin_dir / "apt-get").write_text("#!/usr/bin/env bash\necho 'E: The repository is not signed.' >&2\nexit 100\n")
    done = _run(bin_dir)
    assert done.returncode == 1 and "not signed" in done.stderr
    assert not log.exists() or "sleep" not in log.read_text()


def test_setup_installs_debian_packages_through_apt_install() -> None:
    setup = (ROOT / ".ci/setup").read_text()
    assert ".ci/apt-install $pkgs" in setup
    assert "apt-get" not in setup  # every apt call goes through the waiting script


def test_pyproject_metadata_has_no_setuptools_warning() -> None:
    """``project.license`` is an SPDX expression (PEP 639): setuptools reads it without the deprecation
    warning a TOML table gives, and the build requirement is a setuptools that knows the form."""
    setuptools = pytest.importorskip("setuptools")
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert not [w for w in caught if "setuptools" in w.category.__module__.lower()
                or "Deprecat" in w.category.__name__], [str(w.message)[:120] for w in caught]
    assert dist.metadata.license_expression == "Apache-2.0"
    import tomllib

    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    assert requires == ["setuptools>=77.0.3"] and setuptools.__version__
