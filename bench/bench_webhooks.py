"""Benchmark of the webhook sender: 10,000 events to 10 endpoints on a local receiver.

Run with ``.venv/bin/python bench/bench_webhooks.py`` (or ``bench/run.py --only
webhooks``); ``--quick`` sends 1,000. For SQLite (a file) and PostgreSQL: a migrated
database with 10 endpoints of one operator and 1,000 pending deliveries each (a 1 kB
signed payload, all written at the same instant); one in-process ``WebhookSender`` (the
code ``visio serve`` and ``visio worker`` run) drains them into an aiohttp receiver on
127.0.0.1 that answers 204 and notes the ``webhook-id`` and the arrival time. Each
endpoint gets its events one at a time, in order, so a round delivers at most one per
endpoint. Throughput is deliveries accepted per second from the first claim to the last
arrival; lateness is arrival minus writing time (under a burst it grows with the queue).
The baseline row, in the same run, posts the same 10,000 signed bodies to the same
receiver with 10 concurrent loops and no database: what the HTTP part alone costs.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import sqlalchemy as sa
from aiohttp import web

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench_notify import _drop, _postgres_url  # noqa: E402

from visio import models as m  # noqa: E402
from visio.db import Database, open_database  # noqa: E402
from visio.migrate import upgrade  # noqa: E402
from visio.notify.webhooks import WebhookSender, signature_headers  # noqa: E402
from visio.services.webhooks import new_message_id, new_secret  # noqa: E402
from visio.settings import Settings  # noqa: E402

ENDPOINTS = 10
PAYLOAD = '{"type":"appointment.booked","data":{"note":"' + "x" * 1000 + '"}}'


class Receiver:
    """Answers 204; notes each webhook-id's first arrival and counts repeats."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.repeats = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        key = request.headers["webhook-id"]
        if key in self.arrivals:
            self.repeats += 1
        else:
            self.arrivals[key] = time.time()
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{n}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def _fill(db: Database, count: int, port: int, at: datetime) -> None:
    async with db.write() as session:
        operator = m.Operator(name="CAF du Nord", code=f"W{secrets.token_hex(3)}",
                              country="FR", kind="national", languages=["fr"],
                              timezone="Europe/Paris")
        session.add(operator)
        await session.flush()
        endpoints = [m.WebhookEndpoint(operator_id=operator.id,
                                       url=f"http://127.0.0.1:{port}/{n}",
                                       events=["appointment.booked"], secret=new_secret(),
                                       created_at=at) for n in range(ENDPOINTS)]
        session.add_all(endpoints)
        await session.flush()
        for chunk in range(0, count, 1000):
            session.add_all([m.WebhookDelivery(
                event_id=new_message_id(), endpoint_id=endpoints[i % ENDPOINTS].id,
                event_type="appointment.booked", appointment_id=None,
                appointment_version=1, seq=i, payload=PAYLOAD, created_at=at,
                status="pending", attempts=0, next_attempt_at=at)
                for i in range(chunk, min(count, chunk + 1000))])
            await session.flush()


def _figures(arrivals: list[float], started: float, written: float) -> dict[str, float]:
    late = sorted(t - written for t in arrivals)
    finished = max(arrivals, default=started)
    return {"received": len(arrivals), "rate": len(arrivals) / max(finished - started, 1e-9),
            "p50": statistics.quantiles(late, n=100)[49] if len(late) > 1 else 0.0,
            "p99": statistics.quantiles(late, n=100)[98] if len(late) > 1 else 0.0}


async def one_run(url: str, count: int) -> dict[str, float]:
    """Fill, drain into the receiver, and measure."""
    await asyncio.to_thread(upgrade, url)
    db = open_database(url)
    receiver = Receiver()
    await receiver.start()
    try:
        written = datetime.now(UTC)
        await _fill(db, count, receiver.port, written)
        settings = Settings(database_url=url, secret_key="bench-" + "x" * 32,
                            webhook_allow_private=True, webhook_concurrency=ENDPOINTS)
        sender = WebhookSender(db=db, settings=settings)
        started = time.time()
        await sender.drain(max_rounds=10**6)
        await sender.close()
        async with db.read() as session:
            delivered = await session.scalar(
                sa.select(sa.func.count()).select_from(m.WebhookDelivery)
                .where(m.WebhookDelivery.status == "delivered"))
    finally:
        await receiver.stop()
        await db.dispose()
    return {**_figures(list(receiver.arrivals.values()), started, written.timestamp()),
            "repeats": receiver.repeats, "delivered": delivered or 0}


async def baseline(count: int) -> dict[str, float]:
    """The same signed posts, 10 loops at once, no database."""
    receiver = Receiver()
    await receiver.start()
    secret = new_secret()
    written = time.time()
    try:
        async with aiohttp.ClientSession() as http:
            started = time.time()

            async def loop(n: int) -> None:
                for _ in range(n, count, ENDPOINTS):
                    event_id = new_message_id()
                    headers = signature_headers(event_id=event_id, payload=PAYLOAD,
                                                secrets_=(secret,), at=datetime.now(UTC))
                    async with http.post(f"http://127.0.0.1:{receiver.port}/{n}",
                                         data=PAYLOAD.encode(), headers=headers) as answer:
                        await answer.read()

            await asyncio.gather(*(loop(n) for n in range(ENDPOINTS)))
    finally:
        await receiver.stop()
    return {**_figures(list(receiver.arrivals.values()), started, written),
            "repeats": receiver.repeats, "delivered": len(receiver.arrivals)}


async def main_async(quick: bool) -> tuple[str, bool]:
    """Every row of the table."""
    count = 1000 if quick else 10_000
    lines = ["| backend | deliveries received / marked delivered | repeats | throughput "
             "(deliveries/s) | lateness p50 / p99 (s) |", "|---|---|---|---|---|"]
    done = True

    def row(label: str, result: dict[str, float]) -> str:
        return (f"| {label} | {int(result['received'])} / {int(result['delivered'])} of "
                f"{count} | {int(result['repeats'])} | {result['rate']:.0f} | "
                f"{result['p50']:.1f} / {result['p99']:.1f} |")

    result = await baseline(count)
    lines.append(row("baseline: bare signed posts, no database", result))
    for backend in ("sqlite", "postgresql"):
        name = None
        try:
            if backend == "sqlite":
                folder = tempfile.mkdtemp(prefix="visio-bench-webhooks-")
                url = f"sqlite+aiosqlite:///{folder}/bench.db"
            else:
                url, name = await _postgres_url()
            result = await one_run(url, count)
            done = done and result["received"] == count and result["repeats"] == 0
            lines.append(row(backend, result))
        except Exception as err:  # the other rows still count
            lines.append(f"| {backend} | failed: {type(err).__name__}: {err} | | | |")
            done = False
        finally:
            if name is not None:
                await _drop(name)
        print(lines[-1], flush=True, file=sys.stderr)
    return "\n".join(lines), done


def run(quick: bool = False) -> tuple[str, bool]:
    """The table, and whether every run completed."""
    return asyncio.run(main_async(quick))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    table, complete = run(parser.parse_args().quick)
    print(table)
    sys.exit(0 if complete else 1)
