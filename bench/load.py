"""The load test (``make load``): Locust, headless, through nginx, against two ``visio
serve`` processes on a fresh PostgreSQL database with the demo data of the Nord.

1. A fresh database on PostgreSQL (``LOAD_POSTGRES_URL``, by default
   ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``: the server whose
   ``visio_load_*`` database is created, then dropped), migrated by Alembic, loaded with
   ``visio seed --demo`` (13 sites: 3 fixed, 4 in the neighbouring départements, 6 bus
   tours with their stops) and ``--agents-per-site`` more agent accounts at each site.
2. Two ``python -m visio serve`` processes, each on its own port, behind Debian's nginx
   (``deploy/nginx/visio.conf``, the shipped file: keep-alive upstream, ``X-Forwarded-For``, with
   ``VISIO_TRUSTED_PROXIES=127.0.0.1``).
3. Locust (``bench/locustfile.py``), headless, one user per agent, at a fixed total rate
   (``--rate`` requests/s) for ``--duration`` seconds: slot searches 70 %, bookings 10 %,
   reads 15 %, cancels and reschedules 5 %.

Prints a markdown table: per kind of request, how many, req/s, p50 and p99 (ms, exact,
from every answer), races refused as documented (409/412), errors and 5xx; then the CPU
seconds each process used. Exits 1 when any request failed or answered 5xx.
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
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fleet.harness import render_nginx  # noqa: E402
from visio import models as m  # noqa: E402
from visio.clock import utcnow  # noqa: E402
from visio.db import open_database  # noqa: E402
from visio.domain.kinds import Role  # noqa: E402
from visio.migrate import upgrade  # noqa: E402
from visio.security import hash_password, password_hasher  # noqa: E402
from visio.seed import DEMO_PASSWORD, seed_demo  # noqa: E402
from visio.settings import Settings  # noqa: E402

POSTGRES_URL = os.environ.get("LOAD_POSTGRES_URL",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
KINDS = ("search", "book", "read one", "read list", "cancel", "reschedule")
#: Documented answers to two agents racing: 409, 412, and 422 "not-bookable" (the slot
#: found went to someone else meanwhile).
RACES = {"book": ("409", "422 not-bookable"), "cancel": ("409", "412"),
         "reschedule": ("409", "412", "422 not-bookable")}


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _admin_dsn(database: str | None = None) -> str:
    url = make_url(POSTGRES_URL).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def _sql(statement: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(), timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _prepare(url: str, per_site: int) -> list[dict[str, str]]:
    """Seed the demo and add agents at every site; the agents (e-mail, site)."""
    settings = Settings(database_url=url, secret_key=secrets.token_hex(32))
    await seed_demo(settings)
    db = open_database(url)
    try:
        async with db.write() as session:
            sites = list((await session.execute(
                sa.select(m.Site.id).order_by(m.Site.name))).scalars())
            password_hash = hash_password(password_hasher(), DEMO_PASSWORD)
            users, links, agents = [], [], []
            for index, site_id in enumerate(sites):
                for n in range(per_site):
                    email = f"load.{index}.{n}@visio.test"
                    user_id = m.new_id()
                    users.append({"id": user_id, "email": email, "password_hash": password_hash,
                                  "display_name": f"Agent {index}.{n}", "role": Role.AGENT.value,
                                  "staff_id": None, "active": True, "created_at": utcnow()})
                    links.append({"user_id": user_id, "site_id": site_id})
                    agents.append({"email": email, "site_id": site_id})
            await session.execute(sa.insert(m.User), users)
            await session.execute(sa.insert(m.UserSite), links)
    finally:
        await db.dispose()
    # Interleave the sites so that the users Locust starts first are spread over them all.
    return sorted(agents, key=lambda a: (a["email"].split(".")[2], a["email"]))


def _wait_http(url: str, what: str, process: subprocess.Popen[bytes], seconds: float = 300
               ) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer {url} within {seconds:.0f} s")


def _log_in(base: str, email: str) -> str:
    """A bearer token for an agent (before the load: logins are not part of the mix)."""
    request = urllib.request.Request(
        f"{base}/api/v1/auth/token", headers={"Content-Type": "application/json"},
        data=json.dumps({"email": email, "password": DEMO_PASSWORD}).encode())
    with urllib.request.urlopen(request, timeout=300) as answer:
        return str(json.load(answer)["access_token"])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def _percentile(samples: Sequence[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def table(result: dict[str, Any], seconds: float) -> tuple[str, int]:
    """The markdown table, and how many requests failed (transport errors, 5xx, any answer
    other than success, a documented race refusal or 429 overload shedding)."""
    statuses: dict[str, dict[str, int]] = result["statuses"]
    latencies: dict[str, list[float]] = result["latencies"]
    lines = ["| kind | requests | share | req/s | p50 (ms) | p99 (ms) | races refused "
             "(409/412/422) | shed (429) | errors | of which 5xx |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    total = sum(sum(statuses.get(k, {}).values()) for k in KINDS)
    sums = {"races": 0, "shed": 0, "errors": 0, "fives": 0}
    for kind in KINDS:
        counts = statuses.get(kind, {})
        n = sum(counts.values())
        if not n:
            continue
        races = sum(counts.get(code, 0) for code in RACES.get(kind, ()))
        shed = counts.get("429", 0)
        good = counts.get("201" if kind == "book" else "200", 0)
        errors = n - good - races - shed
        fives = sum(c for code, c in counts.items() if code.startswith("5"))
        share = f"{100 * n / total:.1f} %"
        for key, value in (("races", races), ("shed", shed), ("errors", errors),
                           ("fives", fives)):
            sums[key] += value
        lines.append(f"| {kind} | {n} | {share} | {n / seconds:.1f} | "
                     f"{_percentile(latencies.get(kind, []), 0.5):.0f} | "
                     f"{_percentile(latencies.get(kind, []), 0.99):.0f} | {races} | {shed} | "
                     f"{errors} | {fives} |")
    every = [x for k in KINDS for x in latencies.get(k, [])]
    lines.append(f"| **all** | {total} | 100 % | {total / seconds:.1f} | "
                 f"{_percentile(every, 0.5):.0f} | {_percentile(every, 0.99):.0f} | "
                 f"{sums['races']} | {sums['shed']} | {sums['errors']} | {sums['fives']} |")
    unexpected = {k: v for k, v in statuses.items()
                  if any(code not in ("200", "201", "409", "412", "422 not-bookable", "429")
                         for code in v)}
    if unexpected:
        lines.append(f"\nUnexpected statuses: {json.dumps(unexpected)}")
    return "\n".join(lines), sums["errors"] + sums["fives"]


def run(*, duration: int, rate: float, per_site: int, processes: int) -> int:
    name = f"visio_load_{secrets.token_hex(4)}"
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    work = Path(tempfile.mkdtemp(prefix="visio-load-"))
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    log(f"database {name}: migrating and seeding")
    asyncio.run(_sql(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(url)
        agents = asyncio.run(_prepare(url, per_site))
        ports = [free_port() for _ in range(processes)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("VISIO_")}
        env.update({"VISIO_DATABASE_URL": url, "VISIO_SECRET_KEY": secrets.token_hex(32),
                    "VISIO_LOG_LEVEL": "WARNING", "VISIO_DISPATCH": "0",
                    "VISIO_TRUSTED_PROXIES": "127.0.0.1", "PYTHONPATH": str(ROOT)})
        proxy_port = free_port()
        env["VISIO_BASE_URL"] = f"http://127.0.0.1:{proxy_port}"
        for port in ports:
            server = subprocess.Popen(
                [sys.executable, "-m", "visio", "serve", "--port", str(port)], cwd=ROOT,
                env=env, stdout=subprocess.DEVNULL, stderr=(work / f"serve-{port}.log").open("wb"))
            started.append((f"visio serve :{port}", server))
        for port, (what, server) in zip(ports, started, strict=True):
            _wait_http(f"http://127.0.0.1:{port}/healthz", what, server)
        # The shipped, documented configuration (deploy/nginx/visio.conf), as `make fleet`
        # runs it: only its ports and log path replaced.
        (work / "nginx.conf").write_text(render_nginx((ports[0], ports[1]), proxy_port, work))
        nginx = subprocess.Popen([NGINX, "-p", str(work), "-c", str(work / "nginx.conf")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(("nginx", nginx))
        _wait_http(f"http://127.0.0.1:{proxy_port}/healthz", "nginx", nginx)
        log(f"logging {len(agents)} agents in through nginx")
        base = f"http://127.0.0.1:{proxy_port}"
        with ThreadPoolExecutor(max_workers=4) as pool:
            tokens = list(pool.map(lambda agent: _log_in(base, agent["email"]), agents))
        for agent, token in zip(agents, tokens, strict=True):
            agent["token"] = token
        (work / "agents.json").write_text(json.dumps(agents))
        cpu_before = {what: _cpu_seconds(p.pid) for what, p in started}
        log(f"{len(agents)} agents at {len(agents) // per_site} sites, {rate:g} req/s for "
            f"{duration} s through nginx :{proxy_port} to {processes} serve processes")
        status_file = work / "statuses.json"
        locust = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless",
             "--host", f"http://127.0.0.1:{proxy_port}", "-u", str(len(agents)),
             "-r", str(max(1, len(agents) // 10)), "--run-time", f"{duration}s",
             "--stop-timeout", "30", "--only-summary", "--loglevel", "WARNING",
             "--agents-file", str(work / "agents.json"), "--total-rate", str(rate),
             "--status-file", str(status_file), "--exit-code-on-error", "0"],
            cwd=ROOT, stdout=(work / "locust.log").open("wb"), stderr=subprocess.STDOUT)
        begun = time.monotonic()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        locust.wait(timeout=duration + 300)
        seconds = time.monotonic() - begun
        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)  # Locust, the one child reaped
        locust_cpu = (reaped.ru_utime + reaped.ru_stime
                      - children.ru_utime - children.ru_stime)
        cpu_after = {what: _cpu_seconds(p.pid) for what, p in started}
        if locust.returncode != 0 or not status_file.exists():
            print((work / "locust.log").read_text()[-3000:], file=sys.stderr)
            raise RuntimeError(f"locust exited with {locust.returncode}")
        result = json.loads(status_file.read_text())
        text, failed = table(result, float(duration))
        print(f"Locust {rate:g} req/s for {duration} s ({seconds:.0f} s with the ramp-up and "
              f"the stop), {len(agents)} agents at {len(agents) // per_site} sites, through "
              f"nginx to {processes} `visio serve` processes, PostgreSQL; machine: "
              f"{os.cpu_count()} CPU(s), load average before: "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}.\n")
        print(text)
        cpu = ", ".join([f"{what} {cpu_after[what] - cpu_before[what]:.0f} s"
                         for what, _ in started] + [f"Locust {locust_cpu:.0f} s"])
        print(f"\nCPU seconds over the run: {cpu}.")
        if failed:  # what the proxy and the servers said about it
            for log_file in (work / "error.log", *sorted(work.glob("serve-*.log"))):
                if log_file.exists():
                    tail = log_file.read_text(errors="replace").splitlines()[-15:]
                    print(f"--- {log_file.name} (last lines)", *tail, sep="\n",
                          file=sys.stderr)
        return 1 if failed else 0
    finally:
        for _, process in reversed(started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM if process.args[0] != NGINX else signal.SIGQUIT)
        for _, process in started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        asyncio.run(_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=300, help="seconds (default 300)")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="requests per second, all agents together (default 10)")
    parser.add_argument("--agents-per-site", type=int, default=4,
                        help="agent accounts added at each of the 13 demo sites (default 4)")
    parser.add_argument("--processes", type=int, default=2, choices=[2],
                        help="visio serve processes (two, as deploy/nginx/visio.conf has)")
    args = parser.parse_args()
    sys.exit(run(duration=args.duration, rate=args.rate, per_site=args.agents_per_site,
                 processes=args.processes))


if __name__ == "__main__":
    main()
