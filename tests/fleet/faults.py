"""The six faults of the fleet test, each played under the steady load, and the table.

``run(work)`` starts the fleet (tests/fleet/harness.py), seeds it, runs the load and a
call between two aiortc peers through nginx, plays the faults in turn, checks the end
state in SQL, and returns the rows of the table (fault | measured | target | holds?).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import time as clock_time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as redis

from tests.factories import (
    PASSWORD,
    OperatorBundle,
    make_appointment,
    make_operator,
    make_site,
    make_user,
)
from tests.fleet.harness import Fleet, Instance, healthy, running_fleet, tail, until
from tests.fleet.load import Agent, Load
from tests.notify.receivers import duplicates
from tests.signaling.sigpeer import RtcPeer, SignalingSocket
from visio import models as m
from visio.clock import utcnow
from visio.db import open_database

REDIS_WAIT = 20.0
ALL_DAY = {d: ((clock_time(0, 0), clock_time(23, 59)),) for d in range(7)}
NO_OVERLAP_SQL = """
select
 (select count(*) from appointments a join appointments b on a.id < b.id
   and a.status <> 'cancelled' and b.status <> 'cancelled' and a.staff_id = b.staff_id
   and a.start < b.staff_until and b.start < a.staff_until)
 + (select count(*) from appointments a join appointments b on a.id < b.id
   and a.status <> 'cancelled' and b.status <> 'cancelled' and a.site_id = b.site_id
   and a.booth = b.booth and a.start < b."end" and b.start < a."end")
"""


@dataclass
class Row:
    """One line of the table. ``holds``: the outcome is right; ``in_time``: a time target,
    if the row has one, was met (reported by `make fleet`; the pytest run asserts only
    ``holds``: no timed asserts in tests, a loaded machine must not fail them)."""

    fault: str
    measured: str
    target: str
    holds: bool
    in_time: bool = True

    @property
    def verdict(self) -> bool:
        return self.holds and self.in_time


@dataclass
class World:
    agents: list[Agent]
    op: OperatorBundle
    call: m.Appointment
    probe: m.Appointment
    call_headers: tuple[dict[str, str], dict[str, str]]
    probe_headers: tuple[dict[str, str], dict[str, str]]


async def _login(session: aiohttp.ClientSession, url: str, email: str) -> dict[str, str]:
    async def attempt() -> dict[str, str] | None:
        async with session.post(f"{url}/api/v1/auth/token",
                                json={"email": email, "password": PASSWORD}) as response:
            if response.status != 200:
                return None
            return {"Authorization": f"Bearer {(await response.json())['access_token']}"}
    found: list[dict[str, str]] = []

    async def ok() -> bool:
        headers = await attempt()
        if headers:
            found.append(headers)
        return bool(headers)
    await until(ok, within=30, what="login")
    return found[0]


async def seed(fleet: Fleet) -> World:
    """Four sites open all day, one operator with six staff members, four agents; two
    appointments happening now (the call and the Redis probe)."""
    db = open_database(fleet.postgres.url())
    try:
        sites = [await make_site(db, booths=4, hours=ALL_DAY) for _ in range(4)]
        op = await make_operator(db, staff=12, notice=10, horizon=3, hours=ALL_DAY)
        agents = [await make_user(db, role="agent", sites=sites) for _ in range(4)]
        staff = [await make_user(db, role="staff", staff=s) for s in op.staff[:2]]
        now = utcnow() - timedelta(minutes=1)
        call = await make_appointment(db, site=sites[0], op=op, booked_by=agents[0], start=now,
                                      staff=op.staff[0], minutes=60)
        probe = await make_appointment(db, site=sites[1], op=op, booked_by=agents[1],
                                       start=now, staff=op.staff[1], minutes=60)
    finally:
        await db.dispose()
    async with aiohttp.ClientSession() as session:
        headers = [await _login(session, fleet.url, a.email) for a in agents]
        staff_headers = [await _login(session, fleet.url, s.email) for s in staff]
    site_ids = [s.id for s in sites]
    return World(agents=[Agent(h, site_ids) for h in headers], op=op, call=call, probe=probe,
                 call_headers=(headers[0], staff_headers[0]),
                 probe_headers=(headers[1], staff_headers[1]))


async def join_token(fleet: Fleet, appointment: m.Appointment, headers: dict[str, str]) -> str:
    async with aiohttp.ClientSession() as session, \
            session.post(f"{fleet.url}/api/v1/appointments/{appointment.id}/join",
                         headers=headers) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["token"])


async def sockets_on(instance: Instance) -> int:
    """visio_signaling_sockets of one instance (0 when it does not answer)."""
    try:
        async with aiohttp.ClientSession() as session, \
                session.get(f"{instance.base}/metrics") as response:
            text = await response.text()
    except aiohttp.ClientError:
        return 0
    for line in text.splitlines():
        if line.startswith("visio_signaling_sockets "):
            return int(float(line.split()[1]))
    return 0


async def metric(instance: Instance, name: str) -> float:
    async with aiohttp.ClientSession() as session, \
            session.get(f"{instance.base}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


# ------------------------------------------------------------------------ the call


@dataclass
class Side:
    """One participant, reconnecting through nginx whenever its socket closes."""

    fleet: Fleet
    token: str
    rtc: RtcPeer | None = None
    reconnects: int = 0
    closes: Counter[int | None] = field(default_factory=Counter)
    _task: asyncio.Task[None] | None = None
    _stop: bool = False
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    async def connect(self) -> None:
        sock = await SignalingSocket.open(self.fleet.ws_url, origin=self.fleet.url)
        rtc = RtcPeer(sock)
        try:
            await rtc.join(self.token)
        except BaseException:
            await rtc.close()
            raise
        self.rtc = rtc

    def watch(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while not self._stop:
            assert self.rtc is not None
            await self.rtc.sock.closed.wait()
            if self._stop:
                return
            self.closes[self.rtc.sock.close_code] += 1
            old, self.rtc = self.rtc, None
            # Closing the old connections takes a while on a busy machine: not first.
            closing = asyncio.create_task(old.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
            while not self._stop:
                try:
                    await self.connect()
                    self.reconnects += 1
                    break
                except (aiohttp.ClientError, AssertionError, TimeoutError, OSError):
                    await asyncio.sleep(0.1)

    def peer_connection(self, other: str) -> Any:
        return None if self.rtc is None else self.rtc.pcs.get(other)

    async def close(self) -> None:
        self._stop = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self.rtc is not None:
            await self.rtc.close()
        await asyncio.gather(*self._closing, return_exceptions=True)


@dataclass
class Call:
    a: Side
    b: Side

    def snapshot(self) -> tuple[Any, Any]:
        return (self.a.peer_connection(self.b_id), self.b.peer_connection(self.a_id))

    @property
    def a_id(self) -> str:
        return self.a.rtc.peer_id if self.a.rtc else ""

    @property
    def b_id(self) -> str:
        return self.b.rtc.peer_id if self.b.rtc else ""

    def connected_anew(self, before: tuple[Any, Any]) -> bool:
        """Both sides hold a connection toward the other made after ``before``, connected,
        with video arriving."""
        now = self.snapshot()
        for pc, old, side, other in ((now[0], before[0], self.a, self.b_id),
                                     (now[1], before[1], self.b, self.a_id)):
            if pc is None or pc is old or pc.connectionState != "connected":
                return False
            assert side.rtc is not None
            if side.rtc.counter(other).counts["video"] < 5:
                return False
        return True

    def describe(self) -> str:
        """Each side's peer id, connection states and the frames it got (not their SDP):
        what a failure to connect prints."""
        out = []
        for name, side in (("a", self.a), ("b", self.b)):
            if side.rtc is None:
                out.append(f"{name}: no socket")
                continue
            frames = [{k: v for k, v in f.items() if k in ("type", "peer_id", "from", "seq",
                                                          "polite", "code", "state")}
                      | ({"desc": f["description"]["type"]} if "description" in f else {})
                      for f in side.rtc.sock.frames if f.get("type") not in ("pong", "ice")]
            out.append(f"{name} {side.rtc.peer_id}: states {side.rtc.states}, "
                       f"pcs {[(p, pc.connectionState) for p, pc in side.rtc.pcs.items()]}, "
                       f"closed {side.rtc.sock.closed.is_set()}, frames {frames}")
        return "\n".join(out)

    async def wait_connected(self, before: tuple[Any, Any], within: float = 60) -> float:
        return await until(lambda: self.connected_anew(before), within=within,
                           what="the call to connect again", every=0.05)


async def start_call(fleet: Fleet, world: World) -> Call:
    """The two sides of the call, on different instances (both closed if it fails)."""
    a = Side(fleet, await join_token(fleet, world.call, world.call_headers[0]))
    b = Side(fleet, await join_token(fleet, world.call, world.call_headers[1]))
    try:
        await a.connect()
        one, two = fleet.instances
        for _ in range(20):
            await b.connect()
            if (await sockets_on(one)) == 1 and (await sockets_on(two)) == 1:
                break
            assert b.rtc is not None
            await b.rtc.close()
            b.rtc = None
            await until(lambda: True, within=1, what="")
        else:
            raise AssertionError("the two sides never landed on different instances")
        call = Call(a, b)
        try:
            await call.wait_connected((None, None))
        except AssertionError:
            print(call.describe())
            raise
    except BaseException:
        await a.close()
        await b.close()
        raise
    a.watch()
    b.watch()
    return call


# ------------------------------------------------------------------------ faults


async def fault_kill(fleet: Fleet, load: Load, call: Call) -> Row:
    load.phase = "1 kill"
    # The instance that holds the kiosk's socket.
    counts = [await sockets_on(i) for i in fleet.instances]
    victim = fleet.instances[0] if counts[0] >= 1 else fleet.instances[1]
    await until(lambda: len(load.booked) >= 5, within=60, what="bookings before the kill")
    before = call.snapshot()
    retried_before = len(load.retried_keys)
    # Bookings in flight when the instance dies: a burst, the kill once one reached it.
    burst = asyncio.create_task(load.burst(8))

    async def busy() -> bool:  # /metrics counts itself
        return await metric(victim, "visio_http_requests_in_flight") >= 2
    await until(busy, within=30, what="a request in flight on the victim", every=0.01)
    victim.child.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    await burst
    await victim.child.ended(10)
    survivor = next(i for i in fleet.instances if i is not victim)

    async def both_on_survivor() -> bool:
        return await sockets_on(survivor) == 2
    await until(both_on_survivor, within=60, what="both sides on the other instance")
    rejoined = time.monotonic() - killed_at
    await call.wait_connected(before, within=60)
    media = time.monotonic() - killed_at
    victim.child.start()
    await healthy(victim)
    lost = len(load.retried_keys) - retried_before
    holds = all(i.child.alive for i in fleet.instances)
    return Row("1 SIGKILL an instance during a call",
               f"both peers joined through the other instance {rejoined:.1f} s after the "
               f"kill, media flowing on a new connection after {media:.1f} s; {lost} "
               f"bookings' answers lost, retried with their key; "
               f"load {load.summary(load.phase)}",
               "reconnect < 5 s; bookings whole (checked at the end)", holds,
               in_time=rejoined < 5)


async def _back_in_rotation(fleet: Fleet, instance: Instance) -> None:
    """Until nginx sends requests to ``instance`` again (its request count grows)."""
    async def served() -> float:
        text = ""
        try:
            async with aiohttp.ClientSession() as session, \
                    session.get(f"{instance.base}/metrics") as response:
                text = await response.text()
        except aiohttp.ClientError:
            return 0
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("visio_http_requests_total{")
                   and 'route="/api/v1/slots"' in line)
    start = await served()

    async def grew() -> bool:
        return await served() > start + 3
    await until(grew, within=60, what=f"{instance.child.name} back behind nginx", every=0.2)


async def fault_rolling(fleet: Fleet, load: Load, call: Call) -> Row:
    for instance in fleet.instances:
        await _back_in_rotation(fleet, instance)
    load.phase = "2 rolling"
    codes: list[int] = []
    times: list[float] = []
    media: list[float] = []
    for instance in fleet.instances:
        before = call.snapshot()
        had_socket = (await sockets_on(instance)) > 0
        instance.child.signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        codes.append(await instance.child.ended(40))
        if had_socket:
            other = next(i for i in fleet.instances if i is not instance)

            async def both_on_other() -> bool:
                return await sockets_on(other) == 2  # noqa: B023 (awaited at once)
            await until(both_on_other, within=60, what="both sides on the other instance")
            times.append(time.monotonic() - stopped_at)
            await call.wait_connected(before, within=60)
            media.append(time.monotonic() - stopped_at)
        instance.child.start()
        await healthy(instance)
        await _back_in_rotation(fleet, instance)
    failed = load.failures(load.phase)
    closes = call.a.closes + call.b.closes
    holds = failed == 0 and codes == [0, 0] and len(times) >= 1
    return Row("2 rolling restart (SIGTERM, start) of each instance",
               f"{failed} failed of {load.total(load.phase)} requests "
               f"({load.summary(load.phase)}); exit codes {codes}; "
               f"call rejoined in {', '.join(f'{t:.1f} s' for t in times) or '-'}, media "
               f"again in {', '.join(f'{t:.1f} s' for t in media) or '-'}; "
               f"socket closes {dict(closes)}",
               "0 failed; exit 0; calls reconnect", holds)


async def readyz(instance: Instance) -> int:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, \
                session.get(f"{instance.base}/readyz") as response:
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return 0


async def fault_postgres(fleet: Fleet, load: Load) -> Row:
    load.phase = "3 postgres"
    sent_before = fleet.smtp.count() + len(fleet.sms.received)
    stopping = asyncio.create_task(asyncio.to_thread(fleet.postgres.stop, "fast"))
    during: list[int] = []

    async def all_503() -> bool:
        statuses = [await readyz(i) for i in fleet.instances]
        during.extend(statuses)
        return all(s == 503 for s in statuses)
    await until(all_503, within=60, what="/readyz 503 while PostgreSQL is down", every=0.1)
    await stopping
    # The API during the outage, through nginx: problem+json 503 with Retry-After.
    probes: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:
        for _ in range(10):
            async with session.get(f"{fleet.url}/api/v1/appointments",
                                   headers=load.agents[0].headers) as response:
                kind = response.headers.get("Content-Type", "").split(";")[0]
                probes[f"{response.status} {kind} "
                       f"{'Retry-After' if 'Retry-After' in response.headers else '-'}"] += 1
    outage = load.summary(load.phase)
    started = time.monotonic()
    await asyncio.to_thread(fleet.postgres.start)

    async def all_200() -> bool:
        return all([await readyz(i) == 200 for i in fleet.instances])
    await until(all_200, within=60, what="/readyz 200 after PostgreSQL is back", every=0.1)
    ready = time.monotonic() - started
    # The dispatcher resumes by itself: something is sent after the restart.
    resumed = await until(lambda: fleet.smtp.count() + len(fleet.sms.received) > sent_before,
                          within=60, what="the dispatcher to send again")
    fives = sum(n for (_, s), n in load.statuses[load.phase].items() if s == 500)
    good_probes = set(probes) == {"503 application/problem+json Retry-After"}
    problems = [text for phase, text in load.problems if phase == load.phase]
    holds = fives == 0 and good_probes and not problems and 503 in during
    return Row("3 PostgreSQL restarted under load",
               f"/readyz 503 during, 200 {ready:.1f} s after the start; API probes {dict(probes)}; "
               f"load {outage}; 500s: {fives}; 5xx not problem+json/Retry-After: "
               f"{len(problems)} {problems[:2]}; dispatcher sent again after "
               f"{resumed:.1f} s",
               "503 problem+json + Retry-After, never 500; readyz 503 then 200; resumes",
               holds)


async def fault_redis(fleet: Fleet, world: World) -> Row:
    """Two plain sockets of the probe appointment, one per instance; Redis restarted;
    the time until a `media` frame crosses from one instance to the other again."""
    agent_token = await join_token(fleet, world.probe, world.probe_headers[0])
    staff_token = await join_token(fleet, world.probe, world.probe_headers[1])
    one = fleet.instances[0]
    start_counts = await sockets_on(one)
    first = await SignalingSocket.open(fleet.ws_url, origin=fleet.url)
    await first.join(agent_token, can_rollback=False)
    first_on_one = (await sockets_on(one)) > start_counts
    second: SignalingSocket | None = None
    for _ in range(20):
        before = await sockets_on(one)
        second = await SignalingSocket.open(fleet.ws_url, origin=fleet.url)
        await second.join(staff_token, can_rollback=False)
        second_on_one = (await sockets_on(one)) > before
        if second_on_one != first_on_one:
            break
        await second.close()
        second = None
    assert second is not None, "the probe sockets never landed on different instances"
    video = [True]

    async def ping() -> None:
        while True:
            for sock in (first, second):
                with contextlib.suppress(Exception):
                    await sock.send({"type": "ping"})
            await asyncio.sleep(2)
    pinging = asyncio.create_task(ping())

    async def crosses() -> bool:
        video[0] = not video[0]
        await first.send({"type": "media", "audio": True, "video": video[0]})
        try:
            await second.next("peer_media", within=0.5, video=video[0])
            return True
        except TimeoutError:
            return False
    try:
        await until(crosses, within=30, what="a frame across instances before the restart")
        fleet.redis.signal(signal.SIGKILL)
        await fleet.redis.ended(10)
        restarted_at = time.monotonic()
        fleet.start_redis()
        await fleet.wait_redis()
        back: float | None = None
        with contextlib.suppress(AssertionError):
            await until(crosses, within=REDIS_WAIT, what="a frame across instances after Redis",
                        every=0.05)
            back = time.monotonic() - restarted_at
        exits = [i.child.name for i in fleet.instances if not i.child.alive]
        client = redis.Redis(port=fleet.redis_port)
        try:
            seats = len([k async for k in client.scan_iter(match="*:members")])
        finally:
            await client.aclose()
        alive = [first.closed.is_set(), second.closed.is_set()]
    finally:
        pinging.cancel()
        await first.close()
        await second.close()
    holds = not exits and back is not None
    crossed = (f"{back:.1f} s after the restart" if back is not None
               else f"not within {REDIS_WAIT:.0f} s")
    return Row("4 Redis restarted (killed, started empty)",
               f"a frame crosses instances again: {crossed}; "
               f"instances exited: {exits or 'none'}; probe sockets closed: {alive}; "
               f"rooms seated in Redis since: {seats}",
               "works again by itself (time reported); no instance exits", holds)


async def fault_worker(fleet: Fleet, load: Load) -> Row:
    load.phase = "5 worker"
    fleet.smtp.stop()
    fleet.sms.answer = 500
    one = fleet.instances[0]

    async def backing_off() -> bool:
        return await metric(one, "visio_outbox_retrying") > 0
    await load.burst(6, soon=True)
    await until(backing_off, within=90, what="visio_outbox_retrying > 0", every=0.2)
    retrying = await metric(one, "visio_outbox_retrying")
    fleet.worker.signal(signal.SIGKILL)
    await fleet.worker.ended(10)
    fleet.worker.start()
    fleet.smtp.start()
    fleet.sms.answer = 202

    async def recovered() -> bool:
        return await metric(one, "visio_outbox_retrying") == 0
    took = await until(recovered, within=90, what="the backlog sent", every=0.2)
    return Row("5 worker SIGKILLed and started again; SMTP down, SMS gateway 500",
               f"visio_outbox_retrying rose to {retrying:.0f} (backoff), back to 0 "
               f"{took:.1f} s after SMTP/SMS came back (loss and repeats: at the end)",
               "nothing lost; <= 1 duplicate per kill; backoff in /metrics", True)


async def fault_backup(fleet: Fleet, load: Load) -> Row:
    load.phase = "6 backup"
    pg = fleet.postgres
    count_sql = "select count(*) from appointments"
    ids_sql = "select string_agg(id, ',' order by id) from appointments"
    low = int(await asyncio.to_thread(pg.psql, count_sql))
    dump = pg.directory / "visio.dump"
    await asyncio.to_thread(pg._run, pg.bin("pg_dump"), "--format=custom", "--no-owner",
                            f"--file={dump}", pg.url(driver="postgresql"))
    high_ids = set((await asyncio.to_thread(pg.psql, ids_sql)).split(","))
    await asyncio.to_thread(pg._run, pg.bin("createdb"), "-h", "127.0.0.1", "-p", str(pg.port),
                            "-U", "postgres", "-O", "postgres", "visio_restored")
    await asyncio.to_thread(pg._run, pg.bin("pg_restore"), "--no-owner", "--role=postgres",
                            "--jobs=2", "--exit-on-error",
                            f"--dbname={pg.url('visio_restored', driver='postgresql')}",
                            str(dump))
    upgrade = await asyncio.create_subprocess_exec(
        *fleet.instances[0].child.argv[:3], "db", "upgrade",
        env={**fleet.env, "VISIO_DATABASE_URL": pg.url("visio_restored")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    upgraded, _ = await upgrade.communicate()
    assert upgrade.returncode == 0, upgraded.decode()
    restored = int(await asyncio.to_thread(pg.psql, count_sql, "visio_restored"))
    restored_ids = set((await asyncio.to_thread(pg.psql, ids_sql, "visio_restored")).split(","))
    overlaps = int(await asyncio.to_thread(pg.psql, NO_OVERLAP_SQL, "visio_restored"))
    live_overlaps = int(await asyncio.to_thread(pg.psql, NO_OVERLAP_SQL))
    holds = (low <= restored and restored_ids <= high_ids and overlaps == live_overlaps == 0
             and upgrade.returncode == 0)
    return Row("6 pg_dump under load, restored into a fresh database",
               f"{restored} appointments restored ({low} before the dump began, "
               f"{len(high_ids)} after it ended, every restored one in the source); "
               f"overlaps {overlaps} restored / {live_overlaps} live; "
               f"db upgrade on it: exit {upgrade.returncode}",
               "counts match the dump's moment; no-overlap check matches", holds)


# ------------------------------------------------------------------------ the end


async def final_checks(fleet: Fleet, load: Load, kills: int) -> list[Row]:
    pg = fleet.postgres
    await load.settle()
    # Every booked key has exactly one appointment; refused keys none; each 201 id exists.
    phones = {}
    for line in (await asyncio.to_thread(
            pg.psql, "select usager_phone || ' ' || count(*) from appointments "
                     "where usager_phone is not null group by usager_phone")).splitlines():
        phone, n = line.split()
        phones[phone] = int(n)
    ids = set((await asyncio.to_thread(
        pg.psql, "select string_agg(id, ',') from appointments")).split(","))
    booked_ok = all(phones.get(load.phones[k]) == 1 and i in ids for k, i in load.booked.items())
    refused_ok = all(load.phones[k] not in phones for k in load.refused)
    retried = [k for k in load.retried_keys]
    retried_one = sum(1 for k in retried if phones.get(load.phones[k]) == 1)
    half = int(await asyncio.to_thread(pg.psql, """
        select count(*) from appointments a where a.usager_phone is not null and (
          not exists (select 1 from outbox o where o.appointment_id = a.id)
          or not exists (select 1 from audit_log l where l.appointment_id = a.id))"""))
    overlaps = int(await asyncio.to_thread(pg.psql, NO_OVERLAP_SQL))
    # The outbox drained: nothing due is left pending.
    due_sql = "select count(*) from outbox where status = 'pending' and due_at <= now()"
    await until(lambda: int(pg.psql(due_sql)) == 0, within=90, what="the outbox to drain",
                every=0.5)
    statuses = dict(line.split("|") for line in (await asyncio.to_thread(
        pg.psql, "select status, count(*) from outbox group by status")).splitlines())
    unexplained = int(await asyncio.to_thread(
        pg.psql, "select count(*) from outbox where status = 'failed' and last_error is null"))
    not_due = int(await asyncio.to_thread(
        pg.psql, "select count(*) from outbox where status = 'pending' and due_at > now()"))
    mail_dups = duplicates(fleet.smtp.ids())
    sms_dups = duplicates([str(b.get("reference")) for b in fleet.sms.received])
    sent = set((await asyncio.to_thread(
        pg.psql, "select string_agg(id, ',') from outbox where status = 'sent'")).split(","))
    arrived = set(fleet.smtp.ids()) | {str(b.get("reference")) for b in fleet.sms.received}
    lost = len(sent - arrived)
    return [
        Row("bookings (all faults)",
            f"{len(load.booked)} booked, {len(load.refused)} refused, {len(retried)} retried "
            f"with their key -> {retried_one} with one appointment; {half} half-written",
            "each key 0 or 1 appointment; none half-written; no 201 lost",
            booked_ok and refused_ok and half == 0),
        Row("no overlap (SQL self-join)", f"{overlaps} overlapping pairs", "0", overlaps == 0),
        Row("outbox", f"{statuses}; failed without a reason: {unexplained}; "
            f"not yet due: {not_due}; {len(arrived)} distinct arrived, {lost} marked sent "
            "and never arrived", "all due rows sent / failed with reason / retired / skipped",
            unexplained == 0 and lost == 0),
        Row("repeats", f"{mail_dups} e-mail + {sms_dups} SMS duplicates for {kills} "
            "interruptions of the dispatcher (worker kill, PostgreSQL restart)",
            f"<= 1 per kill ({kills})", mail_dups + sms_dups <= kills),
    ]


def table(rows: list[Row]) -> str:
    lines = ["| fault | measured | target | holds? |", "|---|---|---|---|"]
    lines += [f"| {r.fault} | {r.measured} | {r.target} | "
              f"{'yes' if r.verdict else 'NO' if not r.holds else 'NO (time)'} |"
              for r in rows]
    return "\n".join(lines)


async def run(work: Path) -> list[Row]:
    """The whole fleet test; the table's rows (logs stay in ``work``)."""
    rows: list[Row] = []
    timings: list[tuple[str, float]] = []
    started = time.monotonic()
    async with running_fleet(work) as fleet:
        world = await seed(fleet)
        load = Load(fleet.url, world.agents, world.op.service.id, world.op.service.theme)
        await load.start()
        call: Call | None = None
        try:
            call = await start_call(fleet, world)
            timings.append(("start", time.monotonic() - started))
            for step in (lambda: fault_kill(fleet, load, call),
                         lambda: fault_rolling(fleet, load, call),
                         lambda: fault_postgres(fleet, load),
                         lambda: fault_redis(fleet, world),
                         lambda: fault_worker(fleet, load),
                         lambda: fault_backup(fleet, load)):
                began = time.monotonic()
                rows.append(await step())
                timings.append((rows[-1].fault.split()[0], time.monotonic() - began))
            load.phase = "end"
            await load.stop()
            began = time.monotonic()
            rows += await final_checks(fleet, load, kills=2)
            timings.append(("end", time.monotonic() - began))
            print("seconds: " + ", ".join(f"{name} {t:.0f}" for name, t in timings))
        except BaseException:
            print(table(rows))
            print(f"load: {load.statuses} refused {Counter(load.refused.values())} "
                  f"problems {load.problems[:5]} {load.refusal_samples}")
            for name in ("serve-1.log", "serve-2.log", "worker.log", "nginx/error.log"):
                print(f"--- {name}\n{tail(work / name, 8)}")
            raise
        finally:
            await load.stop()
            await load.close()
            if call is not None:
                await call.a.close()
                await call.b.close()
    return rows
