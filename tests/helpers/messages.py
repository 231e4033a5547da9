"""Worker processes sending messages to their parent, for tests/backends/test_procs.py.

``python -m helpers.messages queue|pipes``: a parent holding a ``multiprocessing.Queue`` of a spawn context, or
:class:`~nas_harness.backends._procs.WorkerMessages`, starts two spawned workers, reads their six messages, prints
``ready`` and waits to be killed.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def send(sender: Any, parent: int, index: int, linger_s: float) -> None:
    """A worker: three messages, then ``linger_s`` seconds alive (it dies with ``parent``)."""
    from nas_harness.backends._procs import die_with_parent

    die_with_parent(parent)
    for k in range(3):
        sender.put(("log", index, k))
    time.sleep(linger_s)


def stop_then_linger(sender: Any, parent: int, sigterm: bool) -> None:
    """A worker set up as the backends set theirs up (``worker_setup(parent, sigterm)``): it says ``ready``, busy
    waits until a signal stops it (sending ``("stopped", signal number)`` when it was taken as an interrupt),
    then says ``alive`` and lingers: only a worker that ignores a second signal gets that far."""
    from nas_harness.backends._procs import worker_setup
    from nas_harness.errors import interrupt_signal

    worker_setup(parent, sigterm)
    try:
        sender.put(("ready",))
        while True:
            time.sleep(0.01)
    except KeyboardInterrupt:
        sender.put(("stopped", int(interrupt_signal())))
    sender.put(("alive",))
    time.sleep(600)


def main(mode: str) -> None:
    from nas_harness.backends._procs import WorkerMessages, spawn_context

    ctx = spawn_context()
    if mode == "queue":
        messages: Any = ctx.Queue()
        senders = [messages, messages]
    else:
        messages = WorkerMessages(2)
        senders = [messages.sender(0), messages.sender(1)]
    procs = [ctx.Process(target=send, args=(senders[i], os.getpid(), i, 600.0)) for i in range(2)]
    for p in procs:
        p.start()
    got = [messages.get(timeout=120) for _ in range(6)]
    assert sorted(got) == sorted(("log", i, k) for i in range(2) for k in range(3)), got
    print("ready", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main(sys.argv[1])
