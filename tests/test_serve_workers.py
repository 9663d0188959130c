"""`visio serve --workers 2`: two processes answer on one port, and stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import time

import aiohttp
import pytest

from tests.notify.receivers import free_port
from tests.processes import output, start_visio, stopped, visio_env, wait_healthy


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
async def test_two_workers_share_the_port_and_stop_on_sigterm(database_url: str) -> None:
    """Fresh connections to the one port are answered by two different processes, both
    children of the parent; SIGTERM to the parent stops both, and it exits 0."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    pids: set[int] = set()
    parent = await start_visio("serve", "--workers", "2", env=visio_env(
        database_url, VISIO_PORT=str(port), VISIO_BASE_URL=base))
    try:
        # Three processes import the app at once: a minute and more on a loaded machine.
        await wait_healthy(base, parent, within=120)
        deadline = time.monotonic() + 20
        while len(pids) < 2:
            assert time.monotonic() < deadline, f"only {pids} answered"
            # A new connection each time: the kernel picks a process per connection.
            async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(force_close=True),
                    timeout=aiohttp.ClientTimeout(total=10)) as session, \
                    session.get(f"{base}/healthz") as answer:
                if answer.status == 200:
                    pids.add(int((await answer.json())["pid"]))
        assert parent.pid not in pids

        parent.send_signal(signal.SIGTERM)
        assert await stopped(parent) == 0, output(parent)
        assert not [pid for pid in pids if _alive(pid)]
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()
        for pid in pids:  # children a killed parent left behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
