"""The link emulator itself: each impairment does what it says, on real packets between
the kiosk's namespace and this one (UDP pings, a TCP transfer)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

from tests.links.call import wait_for
from tests.links.link import Condition, EmulatedLink, Way

_TCP_CLIENT = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
started = time.monotonic()
s.sendall(bytes(int(sys.argv[3])))
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(time.monotonic() - started)
"""


def _tcp_upload(link: EmulatedLink, size: int) -> float:
    """Seconds for the kiosk to send ``size`` bytes over TCP to this namespace."""
    with socket.socket() as listener:
        listener.bind((link.server_ip, 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def sink() -> None:
            conn, _ = listener.accept()
            with conn:
                while conn.recv(65536):
                    pass
                conn.sendall(b"k")

        thread = threading.Thread(target=sink, daemon=True)
        thread.start()
        done = subprocess.run(
            link.in_namespace(sys.executable, "-c", _TCP_CLIENT, link.server_ip, str(port),
                              str(size)), capture_output=True, text=True, check=True,
            timeout=120)
        thread.join(timeout=30)
    return float(done.stdout)


def test_a_clean_link_carries_every_ping(emulated_link: EmulatedLink) -> None:
    rtts = emulated_link.echo_rtts(count=50, interval=0.002)
    assert len(rtts) == 50


def test_the_delay_is_added_each_way(emulated_link: EmulatedLink) -> None:
    emulated_link.set(Condition.symmetric("delay", delay_ms=60))
    rtts = emulated_link.echo_rtts(count=10, interval=0.01)
    assert len(rtts) == 10
    assert min(rtts) >= 120  # never faster than the configured delay, both ways


def test_loss_is_bernoulli_per_direction(emulated_link: EmulatedLink) -> None:
    emulated_link.set(Condition("lossy up", up=Way(loss=0.5)))
    before = emulated_link.counts()
    rtts = emulated_link.echo_rtts(count=200, interval=0.001, timeout=0.05)
    after = emulated_link.counts()
    lost_up = after["up"]["lost"] - before["up"]["lost"]
    lost_down = after["down"]["lost"] - before["down"]["lost"]
    # 200 draws at p = 0.5: outside 55..145 has a probability under 1e-9.
    assert 55 <= lost_up <= 145, lost_up
    assert lost_down == 0
    assert len(rtts) <= 200 - lost_up


def test_the_rate_limits_a_transfer_and_the_queue_drops_its_tail(
        emulated_link: EmulatedLink) -> None:
    emulated_link.set(Condition("slow up", up=Way(rate_kbps=400, queue_bytes=20_000)))
    before = emulated_link.counts()
    seconds = _tcp_upload(emulated_link, 100_000)
    after = emulated_link.counts()
    # 100 kB at 400 kbit/s cannot take less than 2 s; TCP overflows the 20 kB queue.
    assert seconds >= 2.0, seconds
    assert after["up"]["queue_drops"] > before["up"]["queue_drops"]


def test_udp_blocked_lets_tcp_through(emulated_link: EmulatedLink) -> None:
    emulated_link.set(Condition("no udp", udp_blocked=True))
    assert emulated_link.echo_rtts(count=5, interval=0.01, timeout=0.2) == []
    assert _tcp_upload(emulated_link, 10_000) >= 0
    assert emulated_link.counts()["up"]["udp"] >= 5


def test_a_cut_drops_everything_then_ends(emulated_link: EmulatedLink) -> None:
    before = emulated_link.counts()
    emulated_link.cut(12)  # long enough for a Python to start on a loaded machine
    assert emulated_link.echo_rtts(count=3, interval=0.01, timeout=0.2) == []
    # The forwarder counts the drops as it reads them: on a loaded machine, a moment later.
    wait_for(lambda: emulated_link.counts()["up"]["cut"] >= before["up"]["cut"] + 3,
             within=10, what="the three pings counted as cut")
    # Then it comes back by itself (polled: the cut's 12 s run from the command).
    rtts = wait_for(lambda: emulated_link.echo_rtts(count=1, interval=0, timeout=0.5),
                    within=60, what="the link back after its cut")
    assert len(rtts) == 1


def test_nothing_is_left_behind() -> None:
    with EmulatedLink() as link:
        name, ns_pid = link.name, link.ns_pid
        link.process.kill()  # even a forwarder that dies at once
        link.process.wait()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert name not in links
    # The namespace's holder sees its pipe close and exits (then the namespace is gone).
    wait_for(lambda: not os.path.exists(f"/proc/{ns_pid}") or
             "zombie" in _status(ns_pid), within=30, what="the holder gone")


def _status(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as f:
            return f.read().lower()
    except OSError:
        return "zombie"
