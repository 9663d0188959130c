"""Real ``python -m visio`` processes for tests: started on this checkout, waited on."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]


def visio_env(database_url: str, **variables: str) -> dict[str, str]:
    """The environment of a visio process on ``database_url`` (no VISIO_ from outside)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIO_")}
    env.update({"VISIO_DATABASE_URL": database_url,
                "VISIO_SECRET_KEY": "process-test-" + "x" * 32,
                "VISIO_LOG_LEVEL": "WARNING",
                # The code under test (this checkout), whatever the venv has installed.
                "PYTHONPATH": str(ROOT)})
    env.update(variables)
    return env


async def start_visio(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """``python -m visio ARGS`` (the ``visio`` console script), its output kept."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "visio", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def wait_healthy(base: str, process: asyncio.subprocess.Process,
                       within: float = 30.0) -> None:
    """Until ``base``/healthz answers 200; fails at once if the process died."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            if process.returncode is not None:
                _, err = await process.communicate()
                raise AssertionError(f"visio exited {process.returncode}: {err.decode()}")
            try:
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            assert time.monotonic() < deadline, "visio did not answer /healthz"
            await asyncio.sleep(0.1)


async def stopped(process: asyncio.subprocess.Process, within: float = 30.0) -> int:
    """The exit code, once the process has ended (killed if it outlives ``within``)."""
    try:
        return await asyncio.wait_for(process.wait(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise


async def metric(base: str, name: str) -> float:
    """One unlabelled value from ``base``/metrics."""
    async with aiohttp.ClientSession() as session, \
            session.get(f"{base}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")
