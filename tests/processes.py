"""Real ``python -m visio`` processes for tests: started on this checkout, waited on."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
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


#: Where each process of ``start_visio`` writes its output, by pid.
_OUTPUTS: dict[int, Path] = {}


async def start_visio(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """``python -m visio ARGS`` (the ``visio`` console script), its output kept in a file
    (``output(process)``), not a pipe: a pipe nobody reads blocks a process that logs
    more than 64 kB, and ``wait()`` on one waits for every holder of the pipe (``serve
    --workers`` children included) to close it."""
    handle, name = tempfile.mkstemp(prefix="visio-process-", suffix=".log")
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "visio", *args, cwd=ROOT, env=env,
            stdout=handle, stderr=asyncio.subprocess.STDOUT)
    finally:
        os.close(handle)
    _OUTPUTS[process.pid] = Path(name)
    return process


def output(process: asyncio.subprocess.Process, tail: int = 8000) -> str:
    """The last ``tail`` characters ``process`` (from ``start_visio``) wrote."""
    path = _OUTPUTS.get(process.pid)
    if path is None or not path.exists():
        return ""
    return path.read_text(errors="replace")[-tail:]


async def wait_healthy(base: str, process: asyncio.subprocess.Process,
                       within: float = 30.0) -> None:
    """Until ``base``/healthz answers 200; fails at once if the process died."""
    deadline = time.monotonic() + within
    # A probe that hangs (a process stuck) fails the wait, not the whole run.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            if process.returncode is not None:
                raise AssertionError(f"visio exited {process.returncode}: {output(process)}")
            try:
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, \
                f"visio did not answer /healthz within {within} s: {output(process)}"
            await asyncio.sleep(0.1)


async def stopped(process: asyncio.subprocess.Process, within: float = 30.0) -> int:
    """The exit code, once the process has ended (killed if it outlives ``within``)."""
    try:
        return await asyncio.wait_for(process.wait(), within)
    except TimeoutError as err:
        process.kill()
        await process.wait()
        raise AssertionError(f"still running {within} s after the signal, killed: "
                             f"{output(process)}") from err


async def metric(base: str, name: str) -> float:
    """One unlabelled value from ``base``/metrics."""
    async with aiohttp.ClientSession() as session, \
            session.get(f"{base}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")
