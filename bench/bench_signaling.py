"""Benchmark of the signaling server beside a bare aiohttp WebSocket relay.

Run with ``.venv/bin/python bench/bench_signaling.py``; loopback only, bounded loops,
prints a markdown table. Servers run in subprocesses so their RSS can be measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from signaling import (  # noqa: E402
    Admission,
    CallEvent,
    SignalingConfig,
    create_signaling_app,
    derive_private_key,
    issue_join_token,
    key_id_for,
)

SECRET = "bench-secret-not-for-production"
ORIGIN = "http://bench.local"
REDIS_URL = os.environ.get("VISIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IDLE_SOCKETS = 2000
LATENCY_MESSAGES = 2000
LATENCY_RATE = 1000
THROUGHPUT_MESSAGES = 50000
THROUGHPUT_WARMUP = 5000
THROUGHPUT_ROUNDS = 7


# ---------------------------------------------------------------- servers (subprocess side)


class _Host:
    """Admits every join."""

    async def admits(self, appointment_id: str, version: int | None) -> Admission:
        return Admission.ADMITTED

    async def record(self, appointment_id: str, event: CallEvent) -> None:
        return None

    async def ice_servers(self, peer_id: str) -> list[dict[str, Any]]:
        return []


def _bare_app() -> web.Application:
    """A relay without any check: every text frame goes to the other sockets."""
    sockets: set[web.WebSocketResponse] = set()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    for other in sockets:
                        if other is not ws:
                            await other.send_str(msg.data)
        finally:
            sockets.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    return app


def _signaling_app(broker_url: str, prefix: str) -> web.Application:
    key = derive_private_key(SECRET)
    config = SignalingConfig(
        public_keys={key_id_for(key.public_key()): key.public_key()},
        allowed_origins=(ORIGIN,),
        broker_url=broker_url,
        broker_prefix=prefix,
        rate_limit_per_second=1_000_000,
        rate_limit_burst=1_000_000,
        silence_timeout=600,
        join_timeout=60,
    )
    return create_signaling_app(config, _Host())


async def _serve(kind: str, broker_url: str, prefix: str) -> None:
    app = _bare_app() if kind == "bare" else _signaling_app(broker_url, prefix)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
    await site.start()
    port = runner.addresses[0][1]
    print(f"READY {port}", flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------ client (bench side)


class Server:
    """A server subprocess; stopped by closing its stdin."""

    def __init__(self, kind: str, broker_url: str = "", prefix: str = "") -> None:
        cmd = [
            sys.executable,
            __file__,
            "--serve",
            kind,
            "--broker",
            broker_url,
            "--prefix",
            prefix,
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY"):
            raise RuntimeError(f"server {kind} did not start: {line!r}")
        self.url = f"ws://127.0.0.1:{int(line.split()[1])}/ws"

    def cpu_seconds(self) -> float:
        """User + system CPU time used by the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_KEY = derive_private_key(SECRET)
_KID = key_id_for(_KEY.public_key())


def token(room: str, peer: str) -> str:
    now = datetime.now(UTC)
    return issue_join_token(
        private_key=_KEY,
        kid=_KID,
        appointment_id=room,
        participant=peer,
        role="agent",
        not_before=now - timedelta(minutes=1),
        expires_at=now + timedelta(hours=1),
    )


async def _joined(
    http: aiohttp.ClientSession, url: str, room: str, peer: str, bare: bool
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(url, headers={"Origin": ORIGIN})
    if not bare:
        await ws.send_str(json.dumps({"type": "join", "token": token(room, peer)}))
        while True:
            msg = json.loads((await ws.receive()).data)
            if msg["type"] == "joined":
                break
    return ws


async def _pair(
    http: aiohttp.ClientSession, url_a: str, url_b: str, bare: bool
) -> tuple[aiohttp.ClientWebSocketResponse, aiohttp.ClientWebSocketResponse]:
    room = "bench-" + secrets.token_hex(4)
    a = await _joined(http, url_a, room, "a", bare)
    b = await _joined(http, url_b, room, "b", bare)
    if not bare:
        while json.loads((await a.receive()).data)["type"] != "peer_joined":
            pass
    return a, b


def _frame(i: int, t: float) -> str:
    return json.dumps(
        {
            "type": "ice",
            "to": "b",
            "candidate": {"candidate": f"candidate:{i} {t!r}", "sdpMid": "0", "sdpMLineIndex": 0},
        }
    )


def _sent_at(data: str) -> float:
    return float(json.loads(data)["candidate"]["candidate"].split()[1])


async def relay_latency(url_a: str, url_b: str, bare: bool) -> tuple[float, float]:
    """p50/p99 in ms of A→B relay at LATENCY_RATE msg/s."""
    async with aiohttp.ClientSession() as http:
        a, b = await _pair(http, url_a, url_b, bare)
        lat: list[float] = []

        async def receive() -> None:
            while len(lat) < LATENCY_MESSAGES:
                msg = await b.receive()
                lat.append(time.perf_counter() - _sent_at(msg.data))

        reader = asyncio.create_task(receive())
        start = time.perf_counter()
        for i in range(LATENCY_MESSAGES):
            delay = start + i / LATENCY_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await a.send_str(_frame(i, time.perf_counter()))
        await asyncio.wait_for(reader, 30)
        await a.close()
        await b.close()
    q = statistics.quantiles(lat, n=100)
    return q[49] * 1000, q[98] * 1000


async def relay_throughput(
    url_a: str, url_b: str, bare: bool, messages: int | None = None
) -> float:
    """Messages/s relayed A→B when A sends as fast as it can (THROUGHPUT_MESSAGES)."""
    if messages is None:
        messages = THROUGHPUT_MESSAGES
    async with aiohttp.ClientSession() as http:
        a, b = await _pair(http, url_a, url_b, bare)
        got = 0

        async def receive() -> None:
            nonlocal got
            while got < messages:
                msg = await b.receive()
                if msg.type is not WSMsgType.TEXT:
                    raise RuntimeError(f"relay stopped: {msg.type!r} {msg.data!r}")
                got += 1

        reader = asyncio.create_task(receive())
        start = time.perf_counter()
        payload = _frame(0, 0.0)
        for i in range(messages):
            await a.send_str(payload)
            if i % 200 == 0:
                await asyncio.sleep(0)  # let the reader run
        await asyncio.wait_for(reader, 120)
        elapsed = time.perf_counter() - start
        await a.close()
        await b.close()
    return messages / elapsed


async def compare_throughput(
    urls: dict[str, tuple[str, str, bool]], servers: dict[str, list[Server]]
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Throughput of every server, measured in interleaved rounds after a warm-up.

    Every round measures each server once, in an order that rotates from round to
    round, so that background load on a shared machine hits all of them alike; the
    servers are all started before the first round and stay up until the last. Also
    returns the server-side CPU time per relayed message (all instances together), which
    other jobs on the machine do not distort the way they distort wall-clock rates.
    """
    names = list(urls)
    for name in names:  # warm-up: imports, allocators, code paths; not counted
        await relay_throughput(*urls[name], messages=THROUGHPUT_WARMUP)
    results: dict[str, list[float]] = {name: [] for name in names}
    cpu = dict.fromkeys(names, 0.0)
    # Per server process too: with two instances, the sending one and the receiving one.
    split = {name: [0.0] * len(servers[name]) for name in names}
    for r in range(THROUGHPUT_ROUNDS):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            before = [s.cpu_seconds() for s in servers[name]]
            results[name].append(await relay_throughput(*urls[name]))
            used = [s.cpu_seconds() - b for s, b in zip(servers[name], before, strict=True)]
            cpu[name] += sum(used)
            split[name] = [t + u for t, u in zip(split[name], used, strict=True)]
        print(
            f"  round {r + 1}: " + ", ".join(f"{n} {v[-1]:,.0f}" for n, v in results.items()),
            file=sys.stderr,
            flush=True,
        )
    relayed = THROUGHPUT_ROUNDS * THROUGHPUT_MESSAGES
    per_message = {n: c / relayed * 1e6 for n, c in cpu.items()}
    for name, times in split.items():
        if len(times) > 1:
            for i, t in enumerate(times):
                per_message[f"{name}[{i}]"] = t / relayed * 1e6
    return results, per_message


async def idle_memory(server: Server, bare: bool) -> float:
    """RSS growth per idle (joined) socket, in KiB."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        # Warm up allocators and imports with a few sockets first.
        warm = [await _joined(http, server.url, f"warm-{i // 4}", f"w{i}", bare) for i in range(20)]
        await asyncio.sleep(0.2)
        before = server.rss_kib()
        socks: list[aiohttp.ClientWebSocketResponse] = []
        sem = asyncio.Semaphore(100)

        async def one(i: int) -> None:
            async with sem:
                socks.append(await _joined(http, server.url, f"idle-{i // 4}", f"p{i % 4}", bare))

        await asyncio.gather(*(one(i) for i in range(IDLE_SOCKETS)))
        await asyncio.sleep(0.5)
        after = server.rss_kib()
        await asyncio.gather(*(s.close() for s in socks + warm))
    return (after - before) / IDLE_SOCKETS


async def join_latency(url: str) -> float:
    """p99 in ms from sending `join` to receiving `joined` (sequential joins)."""
    times: list[float] = []
    async with aiohttp.ClientSession() as http:
        for i in range(300):
            ws = await http.ws_connect(url, headers={"Origin": ORIGIN})
            frame = json.dumps({"type": "join", "token": token(f"join-{i}", "p")})
            start = time.perf_counter()
            await ws.send_str(frame)
            while json.loads((await ws.receive()).data)["type"] != "joined":
                pass
            times.append(time.perf_counter() - start)
            await ws.close()
    return statistics.quantiles(times, n=100)[98] * 1000


async def rtc_connect_time(url: str) -> float:
    """Median seconds from the second peer's `join` to both aiortc peers connected."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    results: list[float] = []
    async with aiohttp.ClientSession() as http:
        for run in range(3):
            room = f"rtc-{run}-{secrets.token_hex(3)}"
            a = await _joined(http, url, room, "a", False)
            b = await http.ws_connect(url, headers={"Origin": ORIGIN})
            pcs = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2)]
            both = asyncio.Event()

            def check(pcs: list[RTCPeerConnection] = pcs, both: asyncio.Event = both) -> None:
                if all(pc.connectionState == "connected" for pc in pcs):
                    both.set()

            for pc in pcs:
                pc.on("connectionstatechange", check)
                pc.addTrack(AudioStreamTrack())
                pc.addTrack(VideoStreamTrack())
            start = time.perf_counter()
            await b.send_str(
                json.dumps({"type": "join", "token": token(room, "b"), "can_rollback": False})
            )
            while json.loads((await b.receive()).data)["type"] != "joined":
                pass
            await pcs[1].setLocalDescription(await pcs[1].createOffer())
            desc = pcs[1].localDescription
            await b.send_str(
                json.dumps(
                    {"type": "sdp", "to": "a", "description": {"type": desc.type, "sdp": desc.sdp}}
                )
            )
            while (msg := json.loads((await a.receive()).data))["type"] != "sdp":
                pass
            await pcs[0].setRemoteDescription(RTCSessionDescription(**msg["description"]))
            await pcs[0].setLocalDescription(await pcs[0].createAnswer())
            desc = pcs[0].localDescription
            await a.send_str(
                json.dumps(
                    {"type": "sdp", "to": "b", "description": {"type": desc.type, "sdp": desc.sdp}}
                )
            )
            while (msg := json.loads((await b.receive()).data))["type"] != "sdp":
                pass
            await pcs[1].setRemoteDescription(RTCSessionDescription(**msg["description"]))
            await asyncio.wait_for(both.wait(), 20)
            results.append(time.perf_counter() - start)
            for pc in pcs:
                await pc.close()
            await a.close()
            await b.close()
    return statistics.median(results)


async def _redis_ok() -> bool:
    try:
        import redis.asyncio as redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()
        return True
    except Exception:
        return False


async def bench() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 16384)), hard))
    rows: list[tuple[str, str, str, bool | None]] = []

    def row(name: str, value: str, target: str, met: bool | None) -> None:
        rows.append((name, value, target, met))
        print(f"  {name}: {value}", file=sys.stderr, flush=True)

    async def with_servers(
        kinds: list[tuple[str, str, str]], body: Callable[..., Awaitable[None]]
    ) -> None:
        servers = [Server(*k) for k in kinds]
        try:
            await body(*servers)
        finally:
            for s in servers:
                s.stop()

    results: dict[str, Any] = {}
    redis_ok = await _redis_ok()
    prefix = "visio-bench:" + secrets.token_hex(4)
    kinds = [("bare", "", ""), ("signaling", "", "")]
    if redis_ok:
        kinds += [("signaling", REDIS_URL, prefix)] * 2
    else:
        print(f"Redis unreachable at {REDIS_URL}: two-instance rows skipped", file=sys.stderr)

    async def relays(bare_s: Server, one_s: Server, *two_s: Server) -> None:
        urls = {"bare": (bare_s.url, bare_s.url, True), "one": (one_s.url, one_s.url, False)}
        servers = {"bare": [bare_s], "one": [one_s]}
        if two_s:
            urls["two"] = (two_s[0].url, two_s[1].url, False)
            servers["two"] = list(two_s)
        print("relay latency…", file=sys.stderr, flush=True)
        for name, (url_a, url_b, is_bare) in urls.items():
            results[f"{name}_lat"] = await relay_latency(url_a, url_b, is_bare)
        print("relay throughput, interleaved rounds…", file=sys.stderr, flush=True)
        results["tp"], results["cpu"] = await compare_throughput(urls, servers)
        print("joins…", file=sys.stderr, flush=True)
        results["join_p99"] = await join_latency(one_s.url)
        results["rtc"] = await rtc_connect_time(one_s.url)

    async def bare_mem(s: Server) -> None:
        results["bare_mem"] = await idle_memory(s, True)

    async def mem(s: Server) -> None:
        results["one_mem"] = await idle_memory(s, False)

    await with_servers(kinds, relays)
    # Memory is measured on fresh servers, one at a time.
    print("memory per idle socket…", file=sys.stderr, flush=True)
    await with_servers([("bare", "", "")], bare_mem)
    await with_servers([("signaling", "", "")], mem)
    tp = {name: statistics.median(values) for name, values in results["tp"].items()}

    def tp_value(name: str) -> tuple[str, float]:
        ratio = tp[name] / tp["bare"]
        per_round = [v / b for v, b in zip(results["tp"][name], results["tp"]["bare"], strict=True)]
        return (
            f"{tp[name]:,.0f} msg/s ({ratio:.2f}x bare; rounds "
            f"{min(per_round):.2f}–{max(per_round):.2f}x)",
            ratio,
        )

    bare_p50, bare_p99 = results["bare_lat"]
    row(
        "bare relay latency p50/p99 @1k msg/s",
        f"{bare_p50:.2f} / {bare_p99:.2f} ms",
        "reference",
        None,
    )
    values = results["tp"]["bare"]
    row(
        f"bare relay throughput (median of {THROUGHPUT_ROUNDS} rounds of {THROUGHPUT_MESSAGES:,})",
        f"{tp['bare']:,.0f} msg/s (rounds {min(values):,.0f}–{max(values):,.0f})",
        "reference",
        None,
    )
    p50, p99 = results["one_lat"]
    row(
        "signaling 1 instance latency p50/p99 @1k msg/s",
        f"{p50:.2f} / {p99:.2f} ms",
        "p99 < 5 ms",
        p99 < 5,
    )
    value, ratio = tp_value("one")
    row("signaling 1 instance throughput", value, "≥ 0.8x bare", ratio >= 0.8)
    if redis_ok:
        p50, p99 = results["two_lat"]
        row(
            "signaling 2 instances (Redis) latency p50/p99 @1k msg/s",
            f"{p50:.2f} / {p99:.2f} ms",
            "p99 < 15 ms",
            p99 < 15,
        )
        value, ratio = tp_value("two")
        row("signaling 2 instances (Redis) throughput", value, "≥ 0.8x bare", ratio >= 0.8)
    else:
        row("signaling 2 instances (Redis)", f"not run: Redis unreachable at {REDIS_URL}", "", None)
    cpu = results["cpu"]
    row(
        "server CPU per relayed message (bare / 1 instance / 2 instances, Redis excluded)",
        " / ".join(f"{cpu[n]:.1f}" for n in ("bare", "one", "two") if n in cpu) + " µs",
        "reported",
        None,
    )
    if "two[0]" in cpu:
        row(
            "server CPU per relayed message, 2 instances: sending / receiving instance",
            f"{cpu['two[0]']:.1f} / {cpu['two[1]']:.1f} µs",
            "reported",
            None,
        )
    row(
        f"bare relay memory per idle socket ({IDLE_SOCKETS})",
        f"{results['bare_mem']:.1f} KiB",
        "reference",
        None,
    )
    row(
        f"signaling memory per idle joined socket ({IDLE_SOCKETS})",
        f"{results['one_mem']:.1f} KiB",
        "< 24 KiB",
        results["one_mem"] < 24,
    )
    row(
        "join → joined p99 (300 sequential joins)",
        f"{results['join_p99']:.2f} ms",
        "p99 < 50 ms",
        results["join_p99"] < 50,
    )
    row(
        "join → connected, two aiortc peers (median of 3)",
        f"{results['rtc'] * 1000:.0f} ms",
        "reported",
        None,
    )

    print("| measure | value | target | result |")
    print("|---|---|---|---|")
    for name, value, target, met in rows:
        verdict = "—" if met is None else ("target met" if met else "target missed")
        print(f"| {name} | {value} | {target} | {verdict} |")


def main() -> None:
    """Run the benchmark, or one server when called with --serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", choices=["bare", "signaling"])
    parser.add_argument("--broker", default="")
    parser.add_argument("--prefix", default="visio-bench")
    parser.add_argument("--quick", action="store_true",
                        help="fewer messages, rounds and sockets: a smoke run")
    args = parser.parse_args()
    if args.quick:
        global IDLE_SOCKETS, LATENCY_MESSAGES, THROUGHPUT_MESSAGES, THROUGHPUT_WARMUP
        global THROUGHPUT_ROUNDS
        IDLE_SOCKETS, LATENCY_MESSAGES = 300, 500
        THROUGHPUT_MESSAGES, THROUGHPUT_WARMUP, THROUGHPUT_ROUNDS = 10_000, 1000, 2
    if args.serve:
        asyncio.run(_serve(args.serve, args.broker, args.prefix))
    else:
        started = time.perf_counter()
        asyncio.run(bench())
        print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
