"""Worker processes' messages to their parent (``WorkerMessages``): in order per worker, an ended worker reads as
an ended pipe, and a parent killed with SIGKILL leaves no named semaphore for Python's resource tracker to
complain about (a spawn context's ``multiprocessing.Queue`` does: the control case)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys

import pytest
from helpers.messages import send

from nas_harness.backends._procs import WorkerMessages, spawn_context


def test_messages_arrive_in_order_and_an_ended_worker_is_no_wait() -> None:
    messages = WorkerMessages(2)
    ctx = spawn_context()
    procs = [ctx.Process(target=send, args=(messages.sender(i), os.getpid(), i, 0.0)) for i in range(2)]
    for p in procs:
        p.start()
    got = [messages.get(timeout=120) for _ in range(6)]
    for p in procs:
        p.join(timeout=120)
    for i in range(2):
        assert [m for m in got if m[1] == i] == [("log", i, k) for k in range(3)]
    assert messages.empty()  # both pipes read to their end
    with pytest.raises(queue.Empty):
        messages.get(timeout=0.1)
    with pytest.raises(queue.Empty):
        messages.get()  # no worker left: no wait at all
    messages.close()


@pytest.mark.parametrize(("mode", "leaks"), [("queue", True), ("pipes", False)])
def test_sigkill_of_the_parent_leaves_no_semaphores(mode: str, leaks: bool) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "helpers.messages", mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)  # returns once the workers and the resource tracker have ended too
    assert ("leaked semaphore" in err) is leaks, err


def test_fit_workers_never_oversubscribes_the_cores() -> None:
    from nas_harness.backends import default_workers, fit_workers
    from nas_harness.train.trainer import usable_cores

    cores = usable_cores()
    assert fit_workers(0, 1, "cpu", 1000) == (default_workers(1, "cpu"), None)  # the default: silent
    assert fit_workers(cores, 1, "cpu", 1000) == (cores, None)  # what fits: as asked
    n, note = fit_workers(64 * cores, 2, "cpu", 1000, what="jobs", setting="workers")
    assert n == max(1, cores // 2)
    assert note == (f"workers = {64 * cores}: {64 * cores} workers x 2 thread(s) per job would oversubscribe the "
                    f"{cores} usable core(s), so {n} run at once")
    assert fit_workers(cores + 1, 1, "cpu", 1) == (1, f"run.workers = {cores + 1}: {cores + 1} workers x 1 thread(s) "
                                                      f"per trial would oversubscribe the {cores} usable core(s), so "
                                                      f"{cores} run at once; only 1 trial to go, so 1 worker")


@pytest.mark.parametrize("sigterm", [True, False])
def test_sigterm_is_an_interrupt_only_for_the_trial_loop_workers(sigterm: bool) -> None:
    """A trial-loop worker takes SIGTERM (SLURM, systemd, docker stop) as Ctrl-C, once, and cleans up; a process
    pool's worker ends on it: the pool ends a broken pool's workers with SIGTERM, and one that took it as an
    interrupt went on to run the jobs queued to it while the pool waited."""
    from helpers.messages import stop_then_linger

    messages = WorkerMessages(1)
    proc = spawn_context().Process(target=stop_then_linger, args=(messages.sender(0), os.getpid(), sigterm))
    proc.start()
    assert messages.get(timeout=120) == ("ready",)
    os.kill(proc.pid, signal.SIGTERM)
    if sigterm:
        assert messages.get(timeout=120) == ("stopped", signal.SIGTERM)
        assert messages.get(timeout=120) == ("alive",)
        os.kill(proc.pid, signal.SIGTERM)  # a second one is ignored while it cleans up
        os.kill(proc.pid, signal.SIGINT)
        proc.kill()
    proc.join(timeout=120)
    assert proc.exitcode == (-signal.SIGKILL if sigterm else -signal.SIGTERM)  # SIGKILL: it outlived both
    messages.close()


def test_a_signal_ignored_at_launch_stays_ignored_in_a_worker() -> None:
    """A shell script's `cmd &` starts the command with SIGINT ignored, and its workers inherit that: Ctrl-C to
    the group must not stop the workers' trials while the command itself goes on (it did: exit 130 mid-run)."""
    code = ("import signal\n"
            "from nas_harness.backends._procs import interrupt_once\n"
            "interrupt_once(sigterm=True)\n"
            "print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, callable(signal.getsignal(signal.SIGTERM)))\n")
    ignored = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert ignored.stdout.split() == ["True", "True"], ignored.stderr
    usual = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert usual.stdout.split() == ["False", "True"], usual.stderr
