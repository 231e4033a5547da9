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
