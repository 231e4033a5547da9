"""Session-wide fixtures.  Ray is started at most ONCE per test session, and only if a test asks for it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A quiet local Ray with 2 CPUs and 2 *logical* GPUs (Ray schedules them like real ones; nothing uses CUDA
    here), no dashboard, no usage stats, nothing written to $HOME.

    Tests using it should be marked ``@pytest.mark.ray``; the nas_harness Ray backend reuses this instance.
    """
    from nas_harness.backends.ray import quiet_ray_env

    quiet_ray_env(local=True)  # before Ray is imported: it reads the auth mode at import
    ray = pytest.importorskip("ray")
    started = False
    if not ray.is_initialized():
        # address="local": a new private instance, never a cluster someone else started on this machine
        ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, logging_level="ERROR",
                 configure_logging=True, log_to_driver=False)
        started = True
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A real PostgreSQL server started for this session (see ``helpers.postgres``); skipped without one."""
    from helpers.postgres import start_postgres

    pg = start_postgres()
    if pg is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    yield pg
    pg.stop()
