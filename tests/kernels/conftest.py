"""Fixtures of the kernel tests.  Tests that need the compiled C kernels request ``native``: where they cannot
be built (no C compiler, ``NAS_HARNESS_NATIVE=0``) those tests are skipped, with the reason, and the rest
(pure-PyTorch paths, input checks, fallbacks) still run."""

from __future__ import annotations

import pytest

from nas_harness import kernels


@pytest.fixture
def native() -> None:
    """Skip the test unless the compiled C kernels are available in this process."""
    reason = kernels.unavailable_reason()
    if reason is not None:
        pytest.skip(f"the C kernels are unavailable here: {reason}")


@pytest.fixture(autouse=True)
def _restore_threads():
    """``train(..., threads=1)`` sets torch's thread count for the process: give later tests theirs back."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
