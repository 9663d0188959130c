"""HTTP slot-search throughput of `visio serve` with 1 process and with 2 (``--workers 2``,
one port shared with SO_REUSEPORT), in the same run, on the same database.

Run with ``.venv/bin/python bench/bench_processes.py`` (or through ``bench/run.py``);
``--quick`` sends fewer searches. The database is the booking benchmark's (a fresh,
migrated PostgreSQL database with its dataset; SQLite when PostgreSQL is unreachable).
The server is a real ``python -m visio serve`` subprocess; 32 agents search at once, each
on its own connection (the kernel gives each connection to one process). The search rate
limit is raised so that it never answers; ``VISIO_SEARCH_CONCURRENCY`` stays at its
default, per process. On a machine with fewer free cores than processes, two processes
cannot do better than one: the table says how many cores the machine has.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(HERE), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

import bench_booking as bb  # noqa: E402

from visio import models as m  # noqa: E402
from visio.clock import utcnow  # noqa: E402
from visio.db import open_database  # noqa: E402
from visio.domain.calendars import HolidayCalendar  # noqa: E402
from visio.domain.kinds import Role  # noqa: E402
from visio.security import hash_password, password_hasher  # noqa: E402

PROCESSES = (1, 2)
AGENTS = 32


@dataclass(frozen=True, slots=True)
class Result:
    processes: int
    pids: int  # processes seen answering
    level: bb.HttpLevel


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _agents(url: str, site_id: str, count: int) -> list[str]:
    db = open_database(url)
    password_hash = hash_password(password_hasher(), bb.AGENT_PASSWORD)
    tag = secrets.token_hex(3)
    rows = [{"id": m.new_id(), "email": f"bench-proc-{i}-{tag}@visio.test",
             "display_name": f"Bench agent {i}", "password_hash": password_hash,
             "role": Role.AGENT.value, "staff_id": None, "active": True,
             "created_at": utcnow()} for i in range(count)]
    try:
        async with db.write() as session:
            await session.execute(sa.insert(m.User), rows)
            await session.execute(sa.insert(m.UserSite), [
                {"user_id": row["id"], "site_id": site_id} for row in rows])
    finally:
        await db.dispose()
    return [str(row["email"]) for row in rows]


async def _serving(base: str, process: asyncio.subprocess.Process, workers: int) -> int:
    """Wait until ``workers`` processes answer /healthz (or 30 s); how many did."""
    pids: set[int] = set()
    deadline = time.monotonic() + 30
    while len(pids) < workers and time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"visio serve exited with {process.returncode}")
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(
                    force_close=True)) as session, session.get(f"{base}/healthz") as answer:
                pids.add(int((await answer.json())["pid"]))
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.2)
    return len(pids)


async def _measure(url: str, data: bb.Dataset, emails: Sequence[str], workers: int,
                   requests: int) -> Result:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIO_")}
    env.update({"VISIO_DATABASE_URL": url, "VISIO_SECRET_KEY": secrets.token_hex(32),
                "VISIO_BASE_URL": base, "VISIO_LOG_LEVEL": "WARNING", "VISIO_DISPATCH": "0",
                "VISIO_SEARCH_RATE_PER_MINUTE": str(bb.HTTP_RATE_PER_MINUTE),
                "PYTHONPATH": str(ROOT)})
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "visio", "serve", "--port", str(port),
        "--workers", str(workers), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    clients: list[aiohttp.ClientSession] = []
    try:
        seen = await _serving(base, server, workers)
        window = bb.search_window(data)
        params = {"site_id": data.site_id, "theme": bb.THEME,
                  "from": window.start.astimezone(bb.PARIS).isoformat(),
                  "to": window.end.astimezone(bb.PARIS).isoformat()}
        for email in emails:
            client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
            clients.append(client)
            token = await bb.log_in(client, base, email)
            client.headers["Authorization"] = f"Bearer {token}"
        level = await bb.http_level(clients, f"{base}/api/v1/slots", params, requests)
        return Result(workers, seen, level)
    finally:
        for client in clients:
            await client.close()
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 60)


async def _bench(label: str, url: str, scale: bb.Scale) -> list[Result]:
    db = open_database(url)
    try:
        data = await bb.load_dataset(db, bb.next_monday(), HolidayCalendar())
    finally:
        await db.dispose()
    emails = await _agents(url, data.site_id, AGENTS)
    bb.log(f"{label}: dataset loaded; measuring 1 and 2 processes")
    return [await _measure(url, data, emails, workers, scale.http_requests)
            for workers in PROCESSES]


def _table(label: str, results: Sequence[Result]) -> str:
    lines = [f"Machine: {os.cpu_count()} CPU(s); database: {label}; {AGENTS} agents at once, "
             "each on its own connection.", "",
             "| processes | answered by | searches | req/s | p50 (ms) | p99 (ms) | refused |",
             "|---|---|---|---|---|---|---|"]
    for result in results:
        level = result.level
        done = len(level.latencies_ms)
        rate = done / level.seconds if level.seconds else 0.0
        refused = ", ".join(f"{n} x {status}" for status, n in sorted(level.refused.items()))
        lines.append(f"| {result.processes} | {result.pids} pid(s) | {done} | {rate:.1f} | "
                     f"{bb.p50(level.latencies_ms):.0f} | {bb.p99(level.latencies_ms):.0f} | "
                     f"{refused or '—'} |")
    return "\n".join(lines)


def run(*, quick: bool = False) -> tuple[str, bool]:
    """The markdown table, and whether both measures ran with every search answered."""
    scale = bb.QUICK if quick else bb.FULL
    holder: dict[str, list[Result]] = {}

    async def on(label: str, url: str, scale: bb.Scale) -> list[bb.Row]:
        holder[label] = await _bench(label, url, scale)
        return []

    skipped = bb.on_postgres(on, scale)
    if not holder:  # PostgreSQL unreachable
        bb.log(f"PostgreSQL: {skipped[0].value if skipped else 'unreachable'}; on SQLite")
        bb.on_sqlite(on, scale)
    label, results = next(iter(holder.items()))
    complete = all(not r.level.errors and r.pids == r.processes for r in results)
    return _table(label, results), complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="fewer searches: a smoke run, not numbers to publish")
    table, complete = run(quick=parser.parse_args().quick)
    print(table)
    sys.exit(0 if complete else 1)


if __name__ == "__main__":
    main()
