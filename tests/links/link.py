"""The emulated link as the tests and the bench use it (the forwarder is emulator.py).

``EmulatedLink`` starts the forwarder (root: TAP devices and a network namespace), sets its
conditions, cuts it, and starts programs inside the kiosk's namespace; ``close()`` (or
leaving the ``with``) ends it, and the TAP devices and the namespace go with the forwarder
even if this process dies first (see emulator.py).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_serial = itertools.count()


class LinkUnavailable(RuntimeError):
    """This machine cannot emulate a link (not root, no /dev/net/tun, no unshare)."""


@dataclass(frozen=True)
class Way:
    """One direction: rate in kbit/s (0 = unlimited), one-way delay, Bernoulli loss."""

    rate_kbps: float = 0
    delay_ms: float = 0
    loss: float = 0
    queue_bytes: int = 64_000

    def spec(self) -> dict[str, float]:
        return {"rate_bps": self.rate_kbps * 1000, "delay_ms": self.delay_ms,
                "loss": self.loss, "queue_bytes": self.queue_bytes}


@dataclass(frozen=True)
class Condition:
    """A link condition: ``up`` is kiosk → server, ``down`` server → kiosk."""

    name: str
    up: Way = field(default_factory=Way)
    down: Way = field(default_factory=Way)
    udp_blocked: bool = False

    @classmethod
    def symmetric(cls, name: str, *, rate_kbps: float = 0, delay_ms: float = 0,
                  loss: float = 0) -> Condition:
        way = Way(rate_kbps=rate_kbps, delay_ms=delay_ms, loss=loss)
        return cls(name=name, up=way, down=way)


CLEAN = Condition("none")


def unavailable_reason() -> str | None:
    """Why no link can be emulated here, or None."""
    if os.geteuid() != 0:
        return "root (TAP devices and network namespaces)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun (TAP devices)"
    for tool in ("ip", "unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"the {tool} command"
    return None


def _free_subnet() -> int:
    """n such that 10.(200 + n / 256).(n % 256).0/24 (the link) and the same in 10.196/14
    (the baseline's veth) are used by no interface here; the pid picks where to start."""
    used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True,
                          check=True).stdout
    start = (os.getpid() * 7 + next(_serial) * 131) % 1024
    for k in range(1024):
        n = (start + k) % 1024
        if f" 10.{200 + n // 256}.{n % 256}." not in used and \
                f" 10.{196 + n // 256}.{n % 256}." not in used:
            return n
    raise LinkUnavailable("a free subnet in 10.200.0.0/14")


class EmulatedLink:
    """The kiosk's network namespace behind the user-space forwarder."""

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise LinkUnavailable(reason)
        self.name = f"lk{os.getpid() % 10_000_000}{next(_serial) % 100}"
        n = _free_subnet()
        self.server_ip = f"10.{200 + n // 256}.{n % 256}.1"
        self.kiosk_ip = f"10.{200 + n // 256}.{n % 256}.2"
        self._veth = (f"10.{196 + n // 256}.{n % 256}.1", f"10.{196 + n // 256}.{n % 256}.2")
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.links.emulator", "--name", self.name,
             "--server-ip", self.server_ip, "--kiosk-ip", self.kiosk_ip, "--prefix", "24"],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            ready = self._answer(within=20)
        except Exception:
            self.close()
            raise
        self.ns_pid = int(ready["ns_pid"])
        self.condition = CLEAN

    def _answer(self, within: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(
            self.process.stdout.readline() if self.process.stdout else ""), daemon=True)
        reader.start()
        reader.join(within)
        if not result or not result[0]:
            raise LinkUnavailable(f"the link emulator did not answer (exit {self.process.poll()})")
        answer: dict[str, Any] = json.loads(result[0])
        return answer

    def command(self, spec: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(spec) + "\n")
            self.process.stdin.flush()
            return self._answer(within=10)

    def set(self, condition: Condition) -> None:
        """Apply a condition at once (frames already queued keep their schedule)."""
        self.command({"up": condition.up.spec(), "down": condition.down.spec(),
                      "udp_blocked": condition.udp_blocked})
        self.condition = condition

    def cut(self, seconds: float) -> None:
        """Drop every frame, both ways, for ``seconds`` from now."""
        self.command({"cut_for": seconds})

    def counts(self) -> dict[str, Any]:
        """The forwarder's counters per direction (frames, delivered, lost, drops...)."""
        return {k: v for k, v in self.command({}).items() if k in ("up", "down")}

    def in_namespace(self, *command: str) -> list[str]:
        """A command line that runs ``command`` inside the kiosk's namespace."""
        return ["nsenter", "-t", str(self.ns_pid), "-n", "--", *command]

    def chromium(self, work: Path, chromium: str) -> Path:
        """An executable that starts ``chromium`` in the kiosk's namespace (for Playwright's
        ``executable_path``: its pipes pass through ``nsenter``'s exec)."""
        wrapper = work / f"chromium-{self.name}"
        wrapper.write_text(f'#!/bin/sh\nexec nsenter -t {self.ns_pid} -n -- {chromium} "$@"\n')
        wrapper.chmod(0o755)
        return wrapper

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> EmulatedLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ its own delay

    def echo_rtts(self, *, count: int = 300, interval: float = 0.01,
                  target: str | None = None, timeout: float = 1.0,
                  realtime: bool = False) -> list[float]:
        """Round trips (ms) of UDP pings from the kiosk's namespace to an echo process at
        ``target`` (the server side of the link by default) in this namespace. Both ends
        are processes of their own (no GIL shared with a test or a server); ``realtime``
        runs them SCHED_FIFO (when allowed), so that a loaded machine's scheduling weighs
        on the measure as little as possible, the same for the baseline."""
        host = target or self.server_ip
        prefix = ["chrt", "-f", "5"] if realtime and shutil.which("chrt") else []
        echo = subprocess.Popen([*prefix, sys.executable, "-c", _ECHO, host],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert echo.stdout is not None
            port = echo.stdout.readline().strip()
            if not port:
                raise LinkUnavailable("the echo process did not start")
            done = subprocess.run(
                self.in_namespace(*prefix, sys.executable, "-c", _PINGER, host, port,
                                  str(count), str(interval), str(timeout)),
                capture_output=True, text=True, check=True,
                timeout=count * (timeout + interval) + 60)
        finally:
            echo.kill()
            echo.wait()
            for stream in (echo.stdin, echo.stdout):
                if stream is not None:
                    stream.close()
        rtts: list[float] = json.loads(done.stdout)
        return rtts

    def baseline_rtts(self, *, count: int = 300, interval: float = 0.01) -> list[float]:
        """The same pings over a plain veth pair between the two namespaces (the kernel's
        own path, no forwarder): the baseline of the emulator's added delay."""
        here, there = f"{self.name}a", f"{self.name}b"
        host, peer = self._veth
        subprocess.run(["ip", "link", "add", here, "type", "veth", "peer", "name", there,
                        "netns", str(self.ns_pid)], check=True, capture_output=True)
        try:
            subprocess.run(["ip", "addr", "add", f"{host}/30", "dev", here], check=True)
            subprocess.run(["ip", "link", "set", here, "up"], check=True)
            for cmd in (["ip", "addr", "add", f"{peer}/30", "dev", there],
                        ["ip", "link", "set", there, "up"]):
                subprocess.run(self.in_namespace(*cmd), check=True)
            return self.echo_rtts(count=count, interval=interval, target=host,
                                  realtime=True)
        finally:
            subprocess.run(["ip", "link", "del", here], check=False, capture_output=True)


_ECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 0))
print(s.getsockname()[1], flush=True)
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""

_PINGER = r"""
import json, socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
interval, timeout = float(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(timeout)
rtts = []
for i in range(count):
    sent = time.perf_counter()
    s.sendto(i.to_bytes(4, "big") + bytes(60), (host, port))
    try:
        while True:
            data, _ = s.recvfrom(2048)
            if int.from_bytes(data[:4], "big") == i:
                break
        rtts.append((time.perf_counter() - sent) * 1000)
    except TimeoutError:
        pass
    time.sleep(interval)
print(json.dumps(rtts))
"""


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def delay_report(link: EmulatedLink, *, count: int = 300) -> dict[str, float]:
    """The forwarder's added round-trip delay at rate ∞ and delay 0, with its baseline."""
    previous = link.condition
    link.set(CLEAN)
    try:
        link.echo_rtts(count=10)  # ARP resolved, caches warm
        through = link.echo_rtts(count=count, realtime=True)
        direct = link.baseline_rtts(count=count)
    finally:
        link.set(previous)
    return {"pings": len(through), "baseline_p50": statistics.median(direct),
            "baseline_p99": percentile(direct, 99), "p50": statistics.median(through),
            "p99": percentile(through, 99), "max": max(through)}


def describe(condition: Condition) -> dict[str, Any]:
    return asdict(condition)
