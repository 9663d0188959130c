"""A user-space link emulator: two TAP devices and a forwarder between them.

The kernel here has no ``sch_netem``, so ``tc netem`` is out; this process does its work
instead. It creates two TAP devices: the *server side* one stays in the current network
namespace (where the server, coturn and the staff member's browser are), the *kiosk side*
one is moved into a fresh network namespace held by a child process (``unshare -n``).
Every Ethernet frame read from one TAP is written to the other after, per direction:

1. "cut" (everything dropped until a given instant) and "UDP blocked" (IPv4 UDP dropped);
2. Bernoulli loss (``loss``, 0..1) on IP frames (ARP is spared, as a real link's loss
   rarely hits it and a lost ARP would stall the whole link for a second);
3. a rate-limited drop-tail queue: a frame that would make the bytes waiting to be sent
   exceed ``queue_bytes`` is dropped; otherwise it leaves after the frames ahead of it,
   at ``rate_bps`` (0 = unlimited);
4. a constant one-way ``delay_ms``.

Run as ``python -m tests.links.emulator --name N --server-ip A --kiosk-ip B --prefix P``
(root). It prints one JSON line ``{"ready": ..., "ns_pid": ...}`` once the link is up, then
reads JSON commands on stdin, one a line, and answers each with ``{"ok": true}``:
``{"up": {...}, "down": {...}, "udp_blocked": bool, "cut_for": seconds}`` (any subset).
``up`` is kiosk → server, ``down`` server → kiosk. On EOF it exits, and with it go both
TAP devices (never made persistent) and the namespace (its holder reads our pipe and
exits on EOF). Nothing is left behind even when the parent is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import random
import struct
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
UDP = 17


def open_tap(name: str) -> int:
    """A non-persistent TAP device: it disappears when this fd closes."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


@dataclass
class Direction:
    """One direction of the link: its impairments, its queue and its counters."""

    name: str
    out_fd: int
    loss: float = 0.0
    rate_bps: float = 0.0
    delay_ms: float = 0.0
    queue_bytes: int = 64_000
    link_free_at: float = 0.0
    #: Frames accepted and not yet sent on the emulated wire: (departure, size).
    on_wire: deque[tuple[float, int]] = field(default_factory=deque)
    waiting_bytes: int = 0
    #: Frames scheduled for delivery: (due, frame), in due order (FIFO).
    pending: deque[tuple[float, bytes]] = field(default_factory=deque)
    timer: asyncio.TimerHandle | None = None
    counts: dict[str, int] = field(default_factory=lambda: {
        "frames": 0, "delivered": 0, "lost": 0, "queue_drops": 0, "cut": 0, "udp": 0})

    def configure(self, spec: dict[str, Any]) -> None:
        self.loss = float(spec.get("loss", self.loss))
        self.rate_bps = float(spec.get("rate_bps", self.rate_bps))
        self.delay_ms = float(spec.get("delay_ms", self.delay_ms))
        self.queue_bytes = int(spec.get("queue_bytes", self.queue_bytes))


class Forwarder:
    def __init__(self, server_fd: int, kiosk_fd: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.up = Direction("up", out_fd=server_fd)
        self.down = Direction("down", out_fd=kiosk_fd)
        self.udp_blocked = False
        self.cut_until = 0.0
        self.loop.add_reader(kiosk_fd, self._readable, kiosk_fd, self.up)
        self.loop.add_reader(server_fd, self._readable, server_fd, self.down)

    def _readable(self, fd: int, way: Direction) -> None:
        for _ in range(64):  # drain a burst, then let the other direction run
            try:
                frame = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                return
            self._admit(frame, way)

    def _admit(self, frame: bytes, way: Direction) -> None:
        now = time.monotonic()
        way.counts["frames"] += 1
        ethertype = int.from_bytes(frame[12:14], "big") if len(frame) >= 14 else 0
        if now < self.cut_until:
            way.counts["cut"] += 1
            return
        if (self.udp_blocked and ethertype == ETH_IPV4 and len(frame) > 23
                and frame[23] == UDP):
            way.counts["udp"] += 1
            return
        if way.loss > 0 and ethertype != ETH_ARP and random.random() < way.loss:
            way.counts["lost"] += 1
            return
        if way.rate_bps > 0:
            while way.on_wire and way.on_wire[0][0] <= now:
                way.waiting_bytes -= way.on_wire.popleft()[1]
            size = len(frame) + 24  # preamble, FCS and inter-frame gap, as on a wire
            if way.waiting_bytes + size > way.queue_bytes:
                way.counts["queue_drops"] += 1
                return
            departure = max(now, way.link_free_at) + size * 8 / way.rate_bps
            way.link_free_at = departure
            way.on_wire.append((departure, size))
            way.waiting_bytes += size
        else:
            departure = now
        due = departure + way.delay_ms / 1000
        if due <= now and not way.pending:
            self._write(way, frame)
            return
        way.pending.append((due, frame))
        if way.timer is None:
            way.timer = self.loop.call_at(self._loop_time(due), self._deliver, way)

    def _loop_time(self, monotonic: float) -> float:
        return self.loop.time() + (monotonic - time.monotonic())

    def _deliver(self, way: Direction) -> None:
        way.timer = None
        now = time.monotonic()
        while way.pending and way.pending[0][0] <= now + 0.0002:
            self._write(way, way.pending.popleft()[1])
        if way.pending:
            way.timer = self.loop.call_at(self._loop_time(way.pending[0][0]), self._deliver,
                                          way)

    def _write(self, way: Direction, frame: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(way.out_fd, frame)
            way.counts["delivered"] += 1

    def command(self, spec: dict[str, Any]) -> dict[str, Any]:
        if "up" in spec:
            self.up.configure(spec["up"])
        if "down" in spec:
            self.down.configure(spec["down"])
        if "udp_blocked" in spec:
            self.udp_blocked = bool(spec["udp_blocked"])
        if "cut_for" in spec:
            self.cut_until = time.monotonic() + float(spec["cut_for"])
        return {"ok": True, "up": self.up.counts, "down": self.down.counts}


def _ip(*args: str, ns_pid: int | None = None) -> None:
    prefix = ["nsenter", "-t", str(ns_pid), "-n", "--"] if ns_pid else []
    subprocess.run([*prefix, *args], check=True, capture_output=True)


def _set_up(args: argparse.Namespace) -> tuple[int, int, subprocess.Popen[bytes]]:
    server_tap, kiosk_tap = f"{args.name}s", f"{args.name}k"
    server_fd = open_tap(server_tap)
    kiosk_fd = open_tap(kiosk_tap)
    # The namespace's holder: it lives as long as our pipe to its stdin is open.
    holder = subprocess.Popen(
        ["unshare", "--net", "--", sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE)
    ns_pid = holder.pid
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{ns_pid}/ns/net") == os.readlink("/proc/self/ns/net"):
        if time.monotonic() > deadline:
            raise RuntimeError("the namespace's holder did not unshare")
        time.sleep(0.01)
    # No IPv6 on the emulated link: one address family, as the bench's tables assume.
    with open(f"/proc/sys/net/ipv6/conf/{server_tap}/disable_ipv6", "w") as f:
        f.write("1")
    _ip("ip", "addr", "add", f"{args.server_ip}/{args.prefix}", "dev", server_tap)
    _ip("ip", "link", "set", server_tap, "up")
    _ip("ip", "link", "set", kiosk_tap, "netns", str(ns_pid))
    _ip("sysctl", "-qw", f"net.ipv6.conf.{kiosk_tap}.disable_ipv6=1", ns_pid=ns_pid)
    _ip("ip", "link", "set", "lo", "up", ns_pid=ns_pid)
    _ip("ip", "addr", "add", f"{args.kiosk_ip}/{args.prefix}", "dev", kiosk_tap, ns_pid=ns_pid)
    _ip("ip", "link", "set", kiosk_tap, "up", ns_pid=ns_pid)
    _ip("ip", "route", "add", "default", "via", args.server_ip, ns_pid=ns_pid)
    return server_fd, kiosk_fd, holder


async def _serve(server_fd: int, kiosk_fd: int, ns_pid: int) -> None:
    forwarder = Forwarder(server_fd, kiosk_fd)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True, "ns_pid": ns_pid}), flush=True)
    while line := await reader.readline():
        try:
            answer = forwarder.command(json.loads(line))
        except (ValueError, TypeError, KeyError) as err:
            answer = {"ok": False, "error": str(err)}
        print(json.dumps(answer), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="TAP name stem (at most 14 chars)")
    parser.add_argument("--server-ip", required=True)
    parser.add_argument("--kiosk-ip", required=True)
    parser.add_argument("--prefix", type=int, default=24)
    args = parser.parse_args()
    server_fd, kiosk_fd, holder = _set_up(args)
    with contextlib.suppress(OSError):  # a latency-sensitive forwarder, when allowed
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    try:
        asyncio.run(_serve(server_fd, kiosk_fd, holder.pid))
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
        os.close(kiosk_fd)
        os.close(server_fd)


if __name__ == "__main__":
    main()
