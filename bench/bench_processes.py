"""HTTP slot-search throughput of `visio serve` with 1 process and with 2 (``--workers 2``,
one port shared with SO_REUSEPORT), in the same run, on the same database.

Run with ``.venv/bin/python bench/bench_processes.py`` (or through ``bench/run.py``);
``--quick`` loads for 10 s instead of 30. The database is the booking benchmark's (a
fresh, migrated PostgreSQL database with its dataset; SQLite when PostgreSQL is
unreachable). The server is a real ``python -m visio serve`` subprocess; 32 agents log
in, and the load comes from Debian's ``wrk`` (C, one thread, pinned to the last core with
``taskset``; ``bench/wrk_search.lua`` sends each request with the next agent's token), 32
connections at once: the kernel gives each connection to one process. Without ``wrk``
the agents are aiohttp sessions in this process (which then needs a core of its own).
The search rate limit is raised so that it never answers; ``VISIO_SEARCH_CONCURRENCY``
stays at its default, per process.

With wrk the table also says where the machine's CPU went during each timed run, from
/proc: the serve processes, the PostgreSQL backends of the bench's database, wrk, and
every other process of the machine. On a machine with fewer free cores than processes,
two processes cannot do better than one: that split shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

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
WRK = shutil.which("wrk")
WRK_SCRIPT = HERE / "wrk_search.lua"
#: Seconds of load per measure with wrk (full, quick), after an untimed warm-up.
WRK_SECONDS = {False: 30, True: 10}
WARM_UP_SECONDS = 3


@dataclass(slots=True)
class Cpu:
    """CPU seconds used during the timed load, by whom (from /proc)."""

    serve: float = 0.0  # the serve processes (parent and workers)
    postgres: float = 0.0  # the PostgreSQL backends of the bench's database
    generator: float = 0.0  # wrk
    machine: float = 0.0  # every core's busy time, all processes of the machine
    wall: float = 0.0

    @property
    def others(self) -> float:
        return max(0.0, self.machine - self.serve - self.postgres - self.generator)


@dataclass(frozen=True, slots=True)
class Measure:
    """One timed load: searches answered 200, over how long, their latency, the rest."""

    searches: int
    seconds: float
    p50_ms: float
    p99_ms: float
    refused: str  # other statuses, e.g. "3 x 429"
    errors: str  # transport errors or unexpected statuses; "" when none
    requests: int = 0  # every answer, refused ones included (0: not counted)

    @classmethod
    def of(cls, level: bb.HttpLevel) -> Measure:
        return cls(len(level.latencies_ms), level.seconds, bb.p50(level.latencies_ms),
                   bb.p99(level.latencies_ms),
                   ", ".join(f"{n} x {status}" for status, n in sorted(level.refused.items())),
                   "; ".join(f"{status}: {text}" for status, text in level.errors.items()))


@dataclass(frozen=True, slots=True)
class Result:
    processes: int
    pids: int  # processes seen answering
    measure: Measure
    cpu: Cpu | None = field(default=None)


def _ticks(pid: int) -> float:
    """utime + stime of a live process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """A process and its descendants."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def _backends(url: str) -> list[int]:
    admin = make_url(url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1",
                                make_url(url).database)
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


async def _wrk_level(url: str, server_pid: int, base: str, params: dict[str, str],
                     tokens: Sequence[str], seconds: int) -> tuple[Measure, Cpu]:
    """wrk, pinned to the last core, one connection per agent; CPU split measured around the
    timed run (PostgreSQL's only on PostgreSQL)."""
    assert WRK is not None
    path = f"/api/v1/slots?{urlencode(params)}"
    pin = ["taskset", "-c", str((os.cpu_count() or 1) - 1)] if shutil.which("taskset") else []

    def command(duration: int) -> list[str]:
        return [*pin, WRK, "-t1", f"-c{len(tokens)}", f"-d{duration}s", "--timeout", "30s",
                "-s", str(WRK_SCRIPT), base, "--", path, *tokens]

    await asyncio.to_thread(subprocess.run, command(WARM_UP_SECONDS), check=True,
                            capture_output=True)
    on_postgres = url.startswith("postgresql")
    backends = await _backends(url) if on_postgres else []
    serve = _tree(server_pid)
    before = ({pid: _ticks(pid) for pid in serve}, {pid: _ticks(pid) for pid in backends},
              _machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic())
    done = await asyncio.to_thread(subprocess.run, command(seconds), check=True,
                                   capture_output=True, text=True)
    wall = time.monotonic() - before[4]
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk: the one child reaped
    machine = _machine_busy() - before[2]
    backends_after = await _backends(url) if on_postgres else []
    cpu = Cpu(
        serve=sum(_ticks(pid) - before[0].get(pid, 0.0) for pid in _tree(server_pid)),
        postgres=sum(_ticks(pid) - before[1].get(pid, 0.0)
                     for pid in set(backends) | set(backends_after)),
        generator=(reaped.ru_utime + reaped.ru_stime - before[3].ru_utime
                   - before[3].ru_stime),
        machine=machine, wall=wall)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    failed = int(summary["non_2xx"])
    errors = sum(int(summary[k]) for k in ("connect", "read", "write", "timeout"))
    # wrk counts a non-2xx answer in its requests and its latencies: p50/p99 are of all.
    return Measure(int(summary["requests"]) - failed, summary["duration_us"] / 1e6,
                   summary["p50_us"] / 1000, summary["p99_us"] / 1000,
                   f"{failed} x non-2xx" if failed else "",
                   f"{errors} socket errors" if errors else "", int(summary["requests"])), cpu


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
    """Wait until ``workers`` processes answer /healthz (or 300 s: a busy machine starts
    them slowly); how many did."""
    pids: set[int] = set()
    deadline = time.monotonic() + 300
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
                   requests: int, quick: bool) -> Result:
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
        tokens = []
        for email in emails:
            client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
            clients.append(client)
            token = await bb.log_in(client, base, email)
            tokens.append(token)
            client.headers["Authorization"] = f"Bearer {token}"
        if WRK is not None:
            for client in clients:
                await client.close()
            measure, cpu = await _wrk_level(url, server.pid, base, params, tokens,
                                            WRK_SECONDS[quick])
            return Result(workers, seen, measure, cpu)
        level = await bb.http_level(clients, f"{base}/api/v1/slots", params, requests)
        return Result(workers, seen, Measure.of(level))
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
    return [await _measure(url, data, emails, workers, scale.http_requests,
                           scale.http_requests < bb.FULL.http_requests)
            for workers in PROCESSES]


def _table(label: str, results: Sequence[Result]) -> str:
    generator = ("wrk (C, one thread pinned to the last core)" if results[0].cpu is not None
                 else "aiohttp clients in the bench's own process")
    lines = [f"Machine: {os.cpu_count()} CPU(s); database: {label}; {AGENTS} agents at once, "
             f"each on its own connection; load generator: {generator}.", "",
             "| processes | answered by | searches | req/s | p50 (ms) | p99 (ms) | refused |",
             "|---|---|---|---|---|---|---|"]
    for result in results:
        measure = result.measure
        rate = measure.searches / measure.seconds if measure.seconds else 0.0
        lines.append(f"| {result.processes} | {result.pids} pid(s) | {measure.searches} | "
                     f"{rate:.1f} | {measure.p50_ms:.0f} | {measure.p99_ms:.0f} | "
                     f"{measure.refused or '—'} |")
    rates = [r.measure.searches / r.measure.seconds if r.measure.seconds else 0.0
             for r in results]
    if len(rates) == 2 and rates[0]:
        lines += ["", f"Ratio 2 processes / 1 process: **{rates[1] / rates[0]:.2f}x** "
                      "(target ≥ 1.7x on 2 free cores)."]
    if all(r.cpu is not None for r in results):
        lines += ["", "Where the machine's CPU went during each timed run (CPU seconds, from "
                      "/proc; 'others' is every other process of the machine):", "",
                  "| processes | wall (s) | serve | PostgreSQL (bench db) | wrk | others | "
                  "machine busy (of cores x wall) | serve CPU ms per request (any answer) | "
                  "requests/s per serve core |", "|---|---|---|---|---|---|---|---|---|"]
        for result in results:
            cpu = result.cpu
            assert cpu is not None
            requests = max(1, result.measure.requests or result.measure.searches)
            per_search = 1000 * cpu.serve / requests
            lines.append(
                f"| {result.processes} | {cpu.wall:.1f} | {cpu.serve:.1f} | "
                f"{cpu.postgres:.1f} | {cpu.generator:.2f} | {cpu.others:.1f} | "
                f"{cpu.machine:.1f} of {(os.cpu_count() or 1) * cpu.wall:.1f} | "
                f"{per_search:.1f} | {1000 / per_search if per_search else 0:.1f} |")
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
    complete = all(not r.measure.errors and r.pids == r.processes for r in results)
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
