"""``visio serve --workers N``: N server processes on one machine sharing one port.

Each child is an ordinary ``visio serve`` bound with SO_REUSEPORT, so the kernel spreads
new connections over them. The parent only starts them, starts again one that died, and
passes SIGTERM (or SIGINT) on: each child then stops gracefully on its own, and the parent
exits 0 once every child has exited 0.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from types import FrameType

log = logging.getLogger("visio.supervisor")

#: A child that dies sooner than this after its start is not started again at once.
RESTART_PAUSE_SECONDS = 1.0
#: Deaths within a minute after which the parent gives up (a child that cannot start).
MAX_DEATHS_PER_MINUTE = 5


def _start(host: str, port: int, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "visio", "serve", "--host", host, "--port", str(port),
         "--reuse-port"], env=dict(env))


def supervise(*, workers: int, host: str, port: int,
              env: Mapping[str, str] | None = None) -> int:
    """Run ``workers`` children until SIGTERM or SIGINT; 0 when all stopped cleanly."""
    env = dict(os.environ if env is None else env)
    stopping = False
    children: dict[int, subprocess.Popen[bytes]] = {}

    def forward(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        # SIGTERM whatever came: a child stops gracefully on it (a terminal's Ctrl-C has
        # already reached the whole process group).
        for child in children.values():
            if child.returncode is None:
                child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    deaths: list[float] = []
    failed = False
    try:
        for _ in range(workers):
            if stopping:
                break
            child = _start(host, port, env)
            children[child.pid] = child
        if stopping:  # a SIGTERM during the starts: the children started since get it too
            forward(signal.SIGTERM, None)
        log.info("serving on %s:%d with %d processes (pids %s)", host, port, workers,
                 ", ".join(str(pid) for pid in children))
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            if pid not in children:
                continue
            child = children.pop(pid)
            child.returncode = code = os.waitstatus_to_exitcode(status)
            if stopping:
                failed = failed or code != 0
                continue
            now = time.monotonic()
            deaths = [t for t in deaths if now - t < 60] + [now]
            log.error("server process %d exited with %d", pid, code)
            if len(deaths) > MAX_DEATHS_PER_MINUTE:
                log.error("server processes keep dying: stopping")
                failed = True
                forward(signal.SIGTERM, None)
                continue
            time.sleep(RESTART_PAUSE_SECONDS)
            if not stopping:
                child = _start(host, port, env)
                children[child.pid] = child
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if failed else 0
