"""The fixture degrades a real call: two Chromium pages, the kiosk's behind the emulated
link, and what getStats() measures follows the link's condition."""

from __future__ import annotations

from typing import Any

import pytest

from tests.links.call import LinkedCall, stats, wait_for
from tests.links.link import Condition

pytestmark = pytest.mark.slow  # a real call, set up once per module (about 30 s)

DELAY_MS = 300  # one way, each way: far above what a loaded machine adds


def _connected(page: Any) -> bool:
    return bool(page.get_attribute("#call-state", "data-call-state") == "connected")


def _rtt(page: Any) -> float | None:
    value = stats(page)["rtt"]
    return None if value is None else float(value)


def test_the_emulated_delay_shows_in_the_calls_rtt(linked_call: LinkedCall) -> None:
    """Connected on a clean link (RTT under the delay to come), then 300 ms each way: both
    sides' RTT rises above 600 ms, and the call still carries the kiosk's voice to the
    staff member (its video too, unless the page went audio only by itself while the
    delay's first queue drained: a loaded machine may do that, and that is right)."""
    call = linked_call
    appointment = call.appointment_now()
    kiosk_page, staff_page, _ = call.open_pages(call.kiosk_browser(), appointment)
    for page in (kiosk_page, staff_page):
        wait_for(lambda p=page: _connected(p), what="connected")
    clean = wait_for(lambda: _rtt(staff_page), what="a first RTT")
    assert clean < 2 * DELAY_MS, clean

    call.link.set(Condition.symmetric("delayed", delay_ms=DELAY_MS))
    for page in (kiosk_page, staff_page):
        wait_for(lambda p=page: (_rtt(p) or 0) >= 2 * DELAY_MS, within=60,
                 what="the RTT measured by getStats() over the delayed link", every=0.5)
    packets = stats(staff_page)["inAudio"]["packets"]
    wait_for(lambda: stats(staff_page)["inAudio"]["packets"] >= packets + 20,
             what="the kiosk's voice still reaching the staff member")
    counts = call.link.counts()
    assert counts["up"]["delivered"] > 0
    assert counts["down"]["delivered"] > 0


def test_with_udp_blocked_the_call_goes_through_the_tcp_relay(
        linked_call: LinkedCall) -> None:
    """No UDP through the link: the kiosk's side of the call is a TURN relay over TCP."""
    call = linked_call
    appointment = call.appointment_now()
    call.link.set(Condition("udp blocked", udp_blocked=True))
    kiosk_page, staff_page, _ = call.open_pages(call.kiosk_browser(), appointment)
    for page in (kiosk_page, staff_page):
        wait_for(lambda p=page: _connected(p), what="connected through the relay")
    kiosk = wait_for(lambda: (s := stats(kiosk_page))["candidate"] and s,
                     what="the kiosk's selected pair")
    assert kiosk["candidate"] == "relay", kiosk
    assert kiosk["protocol"] == "tcp", kiosk
    frames = stats(staff_page)["inVideo"]["frames"]
    wait_for(lambda: stats(staff_page)["inVideo"]["frames"] >= frames + 20,
             what="video flowing to the staff member through the relay")
    assert call.link.counts()["up"]["udp"] > 0
