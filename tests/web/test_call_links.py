"""The call page on weak links, in headless Chromium (issue 18).

Caps, priorities, DTX and RED in what the pages negotiate; the link indicator; audio only
by itself and back (measures fed through the page's debug hook, VISIO_CALL_LINK_DEBUG:
the link emulator of `make bench-links` measures the real thing); the cut notice when
the other side's media stops; the fallback phone when ICE fails; the TCP relay.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import in_thread
from tests.web.conftest import BackgroundServer, Live, log_in
from tests.web.test_browser import (
    AGENT,
    RELAY_ONLY,
    SELECTED_TYPES,
    call_state,
    frames_rising,
    inbound,
    video_still,
    wait_until,
)
from visio.migrate import upgrade
from visio.settings import Settings

STAFF_CAF = "staff.caf59@visio.test"
VIDEO_KBPS = 640
FALLBACK_SECONDS = 15
#: Hands both pages' link machines to the test: on this loaded machine real measures
#: may well say "very weak" (CPU-starved browsers) and switch to audio only by themselves.
MANUAL = "window.visioLinkQuality.feed({t: 0, kbps: 1500, rttMs: 40, loss: 0, packets: 0})"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def links(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """visio with the link debug hook on and its own video cap."""
    path = tmp_path_factory.mktemp("links") / "visio.db"
    url = f"sqlite+aiosqlite:///{path}"
    in_thread(lambda: upgrade(url))
    port = _free_port()
    settings = Settings(database_url=url, secret_key="links-secret-" + "x" * 32,
                        host="127.0.0.1", port=port, base_url=f"http://127.0.0.1:{port}",
                        login_max_failures=1000, call_fallback_seconds=FALLBACK_SECONDS,
                        call_link_debug=True, call_video_max_kbps=VIDEO_KBPS)
    server = BackgroundServer(settings)
    server.start()
    try:
        yield Live(url=settings.base_url, server=server)
    finally:
        server.stop()


def _pair(live: Live, browser: Any, appointment: str, *, kiosk: str = AGENT,
          staff: str = STAFF_CAF, init: str | None = None,
          manual: bool = False) -> tuple[Any, Any, list[Any]]:
    """The kiosk's and the staff member's call pages, both connected."""
    pages, contexts = [], []
    for email in (kiosk, staff):
        context = browser.new_context(locale="fr-FR")
        if init:
            context.add_init_script(script=init)
        contexts.append(context)
        page = context.new_page()
        log_in(page, live.url, email)
        page.goto(f"{live.url}/call/{appointment}")
        assert page.locator("#call-state").count() == 1, (page.url, page.inner_text("main"))
        if manual:
            page.evaluate(MANUAL)
        pages.append(page)
    for page in pages:
        wait_until(lambda p=page: call_state(p) == "connected", what="connected")
    return pages[0], pages[1], contexts


def _cateau_and_caf59(links: Live, browser: Any) -> tuple[Any, Any, list[Any]]:
    """A call now between Le Cateau-Cambrésis's kiosk and CAF59's second staff member."""
    appointment = links.appointment_now(commune="Le Cateau-Cambrésis", operator="CAF59",
                                        staff=2, theme="famille")
    return _pair(links, browser, appointment, kiosk="agent.le-cateau-cambresis@visio.test",
                 staff="staff.caf59@visio.test")


def _link(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(
        "({...document.getElementById('link-quality').dataset,"
        " text: document.getElementById('link-quality').innerText,"
        " note: document.getElementById('link-note').hidden ? ''"
        " : document.getElementById('link-note').innerText,"
        " sample: window.visioCall.link.sample})"))


SENDERS = """() => {
  const [peer] = window.visioCall.peers.values();
  return peer.pc.getSenders().filter((s) => s.track).map((s) => {
    const p = s.getParameters();
    return {kind: s.track.kind, degradation: p.degradationPreference || null, ...p.encodings[0]};
  });
}"""


def test_caps_priorities_dtx_red_and_the_test_calls_verdict(links: Live, browser: Any) -> None:
    """Video capped at the setting and kept moving, audio at high priority; each side's
    description asks for Opus DTX with in-band FEC, RED first; the indicator says the
    link is good in words; the test call through the echo peer measures the link and
    says what to expect."""
    appointment = links.appointment_now(commune="Hondschoote", operator="CAF59", staff=1,
                                        theme="famille")
    kiosk, staff, contexts = _pair(links, browser, appointment, manual=True)
    try:
        for page in (kiosk, staff):
            senders = {s["kind"]: s for s in wait_until(
                lambda p=page: (lambda got: got if any(s.get("maxBitrate") for s in got)
                                else None)(p.evaluate(SENDERS)), what="tuned senders")}
            assert senders["video"]["maxBitrate"] == VIDEO_KBPS * 1000
            assert senders["video"]["degradation"] == "maintain-framerate"
            assert senders["video"]["active"] is True
            assert senders["audio"]["priority"] == "high"
            assert senders["audio"]["networkPriority"] == "high"
            remote = page.evaluate("[...window.visioCall.peers.values()][0]"
                                   ".pc.remoteDescription.sdp")
            audio = remote[remote.index("m=audio"):remote.index("m=video")]
            opus = audio.split("opus/48000")[0].rsplit("a=rtpmap:", 1)[1].strip()
            fmtp = next(line for line in audio.splitlines()
                        if line.startswith(f"a=fmtp:{opus} "))
            assert "usedtx=1" in fmtp
            assert "useinbandfec=1" in fmtp
            red = audio.split(" red/48000")[0].rsplit("a=rtpmap:", 1)[1].strip()
            assert audio.splitlines()[0].split()[3] == red, audio.splitlines()[0]
            # The indicator says in words what its attribute says (how good the link
            # looks on this loaded machine is not asserted: the audio-only test feeds it).
            words = {"good": "Connexion : bonne", "weak": "Connexion : faible",
                     "very-weak": "Connexion : très faible"}
            shown = _link(page)
            assert shown["text"].strip() == words[shown["quality"]], shown
            assert frames_rising(page)

        kiosk.click("#test-call")
        wait_until(lambda: kiosk.get_attribute("#test-link", "data-quality"), within=120,
                   what="the test call's verdict")
        verdict = kiosk.evaluate("({...document.getElementById('test-link').dataset,"
                                 " text: document.getElementById('test-link').innerText})")
        # The words follow the measures (the echo peer shares this loaded machine, so
        # how good the link looks here is not asserted; link_quality's tests do that).
        words = {"good": "Bonne connexion : l'appel se fera en vidéo.",
                 "weak": "Connexion moyenne : l'image pourra être plus petite ou moins fluide.",
                 "very-weak": "Connexion faible : l'appel se fera en audio."}
        assert verdict["text"].startswith(words[verdict["quality"]]), verdict
        again = kiosk.evaluate(
            "async (v) => (await import('/static/link_quality.js')).classify(v)",
            {"kbps": float(verdict["kbps"]), "rttMs": float(verdict["rttMs"]),
             "loss": float(verdict["loss"])})
        assert again == verdict["quality"], verdict
        assert float(verdict["rttMs"]) >= 0, verdict
        assert 0 <= float(verdict["loss"]) <= 1
        assert float(verdict["kbps"]) > 0
        assert f"{verdict['rttMs']} ms" in verdict["text"]
        kiosk.click("#test-stop")
    finally:
        for context in contexts:
            context.close()


POOR = "{kbps: 80, rttMs: 600, loss: 0.02}"
FINE = "{kbps: 1500, rttMs: 40, loss: 0}"


def _feed(page: Any, sample: str, seconds: int, start: int) -> dict[str, Any]:
    """Feed the kiosk's machine one sample a second of made-up time, packets rising."""
    return dict(page.evaluate(f"""() => {{
      let last = null;
      for (let i = 0; i < {seconds}; i += 1) {{
        const t = {start * 1000} + i * 1000;
        last = window.visioLinkQuality.feed({{...{sample}, t, packets: t}});
      }}
      return last;
    }}"""))


def _audio(page: Any) -> dict[str, Any]:
    """The audio sender's parameters (its first encoding)."""
    return next(dict(s) for s in page.evaluate(SENDERS) if s["kind"] == "audio")


def test_audio_only_by_itself_and_back(links: Live, browser: Any) -> None:
    """A very weak link for five seconds on the kiosk: its video goes off at once, the
    other side is told and stops its own, both say so in words and the indicators fall;
    thirty seconds of good measures later, video comes back both ways by itself.
    Forcing video from the staff side overrides the machine."""
    appointment = links.appointment_now(commune="Hondschoote", operator="CARSAT-HDF", staff=1,
                                        theme="retraite", booth=2)
    kiosk, staff, contexts = _pair(links, browser, appointment,
                                   staff="staff.carsat-hdf@visio.test", manual=True)
    try:
        for page in (kiosk, staff):
            assert frames_rising(page)
        state = _feed(kiosk, POOR, 4, 0)
        assert state["audioOnly"] is False, "audio only before five seconds"
        assert state["shown"] == "very-weak"
        state = _feed(kiosk, POOR, 2, 4)
        assert state["audioOnly"] is True
        # Off at once on its own sender (no round trip), the other side told.
        assert kiosk.evaluate(SENDERS)[1 if kiosk.evaluate(SENDERS)[0]["kind"] == "audio"
                                       else 0]["active"] is False
        assert _link(kiosk)["audioOnlyCause"] == "auto"
        assert "audio" in _link(kiosk)["note"]
        wait_until(lambda: _link(staff)["audioOnlyCause"] == "peer", what="staff told")
        assert _link(staff)["peerQuality"] == "very-weak"
        assert _link(staff)["quality"] == "very-weak"
        assert _link(staff)["text"].strip() == "Connexion : très faible"
        assert "audio" in _link(staff)["note"]
        assert kiosk.get_attribute("#audio-only", "aria-pressed") == "true"
        for page in (kiosk, staff):
            wait_until(lambda p=page: video_still(p), within=20, what="video stopped")
            assert frames_rising(page, "audioPackets", by=50)
            assert call_state(page) == "connected"
            # Speech capped on both sides, so that the whole call fits a 100 kbit/s link.
            wait_until(lambda p=page: _audio(p).get("maxBitrate") == 16_000,
                       what="audio capped on a very weak link")

        # Good again: still audio only for thirty seconds, then video both ways.
        state = _feed(kiosk, FINE, 29, 6)
        assert state["audioOnly"] is True
        state = _feed(kiosk, FINE, 2, 35)
        assert state["audioOnly"] is False
        for page in (kiosk, staff):
            wait_until(lambda p=page: _link(p)["audioOnly"] == "false", what="video back")
            assert frames_rising(page)
        wait_until(lambda: "maxBitrate" not in _audio(kiosk), what="audio uncapped")
        assert "vidéo" in _link(kiosk)["note"]
        wait_until(lambda: _link(staff)["quality"] == "good", what="staff indicator good")

        # Very weak again, but the staff member forces video: it holds on both sides.
        _feed(kiosk, POOR, 6, 40)
        wait_until(lambda: _link(staff)["audioOnlyCause"] == "peer", what="audio only again")
        staff.click("#audio-only")
        for page in (kiosk, staff):
            wait_until(lambda p=page: _link(p)["forceVideo"] == "true", what="video forced")
            assert _link(page)["audioOnly"] == "false"
            assert frames_rising(page)
    finally:
        for context in contexts:
            context.close()


def _video_active(page: Any) -> bool:
    """Whether the page's video sender has its encoding on."""
    return bool(next(s for s in page.evaluate(SENDERS) if s["kind"] == "video")["active"])


def test_a_very_weak_link_from_the_start_goes_audio_only_at_once(
        links: Live, browser: Any) -> None:
    """The kiosk's first measures, before any good one, put the outgoing estimate under
    what video needs: audio only after one second of them, not five (video's start rate
    would fill a 100 kbit/s link's queue meanwhile), and the staff side stops its video
    too. A dip later in the call still waits the five seconds."""
    appointment = links.appointment_now(commune="Hondschoote", operator="CAF59", staff=1,
                                        theme="famille")
    kiosk, staff, contexts = _pair(links, browser, appointment)
    try:
        starved = "{kbps: 60, rttMs: 450, loss: 0.02}"
        state = _feed(kiosk, starved, 1, 0)
        assert state["audioOnly"] is False, "audio only on a single sample"
        state = _feed(kiosk, starved, 1, 1)
        assert state["audioOnly"] is True, state
        assert _video_active(kiosk) is False
        wait_until(lambda: _link(staff)["audioOnlyCause"] == "peer", what="staff told")
        wait_until(lambda: not _video_active(staff), what="the staff's video off")
        for page in (kiosk, staff):
            wait_until(lambda p=page: video_still(p), within=20, what="video stopped")

        # Once a good measure was seen, the same estimate waits the five seconds.
        kiosk.evaluate("window.visioLinkQuality.machine.reset()")
        _feed(kiosk, FINE, 2, 100)
        state = _feed(kiosk, starved, 4, 102)
        assert state["audioOnly"] is False, "the start's shortcut after a good measure"
        state = _feed(kiosk, starved, 2, 106)
        assert state["audioOnly"] is True
    finally:
        for context in contexts:
            context.close()


def test_audio_only_pressed_stops_video_both_ways_at_once(links: Live, browser: Any) -> None:
    """The kiosk presses Audio only: its video encoding goes off at once (no waiting for
    the renegotiation, which a weak link makes slow), and so does the staff member's as
    soon as the kiosk's link frame says so; the staff page says the other side is in
    audio only. Pressed again, video comes back both ways."""
    appointment = links.appointment_now(commune="Hondschoote", operator="CARSAT-HDF",
                                        staff=1, theme="retraite", booth=2)
    kiosk, staff, contexts = _pair(links, browser, appointment,
                                   staff="staff.carsat-hdf@visio.test", manual=True)
    try:
        for page in (kiosk, staff):
            wait_until(lambda p=page: _video_active(p), what="video on")
        kiosk.click("#audio-only")
        assert _video_active(kiosk) is False or wait_until(
            lambda: not _video_active(kiosk), what="the kiosk's video off")
        wait_until(lambda: not _video_active(staff), what="the staff's video off")
        wait_until(lambda: _link(staff)["audioOnlyCause"] == "peer-forced",
                   what="the staff page knows")
        assert _link(staff)["audioOnly"] == "true"
        assert staff.inner_text("#peer-media") == "L'autre participant est en audio seulement."
        assert kiosk.get_attribute("#audio-only", "aria-pressed") == "true"
        assert staff.get_attribute("#audio-only", "aria-pressed") == "false"
        for page in (kiosk, staff):
            wait_until(lambda p=page: video_still(p), within=20, what="video stopped")
            assert call_state(page) == "connected"

        kiosk.click("#audio-only")
        for page in (kiosk, staff):
            wait_until(lambda p=page: _video_active(p), what="video on again")
            assert frames_rising(page)
        assert _link(staff)["audioOnlyCause"] == ""
    finally:
        for context in contexts:
            context.close()


#: The kiosk's signaling socket closes under a page that does not notice (as when a
#: saturated link holds its TCP: the server gives up on it long before the page hears),
#: so its media goes on; then the page hears of it, and reconnects.
STUCK_SIGNALING = """() => {
  const c = window.visioCall;
  window.__ws = c.ws;
  c.ws = {readyState: WebSocket.CLOSED, send() {}, close() {}};
  window.__ws.close(4000, "test");
}"""
HEARS_OF_IT = """() => {
  const c = window.visioCall;
  c.ws = window.__ws;
  c.ws.dispatchEvent(new CloseEvent("close", {code: 4000}));
}"""


def test_the_other_side_dropping_from_signaling_is_no_wait_for_it(
        links: Live, browser: Any) -> None:
    """The server loses the kiosk's signaling socket while its media still flows: the
    staff side says the connection dropped and is being restored, never that it waits
    for the other side; once the kiosk is back, both are connected again. When the kiosk
    then leaves for real, the staff side waits for it in words."""
    kiosk, staff, contexts = _cateau_and_caf59(links, browser)
    try:
        assert frames_rising(staff, "audioPackets", by=50)
        staff.evaluate(WATCH)
        kiosk.evaluate(STUCK_SIGNALING)
        wait_until(lambda: staff.evaluate("window.visioCall.peers.size") == 0,
                   what="the staff side told the kiosk left")
        assert call_state(staff) == "reconnecting"
        assert staff.inner_text("#call-state") == "La connexion est coupée ; reconnexion en cours…"
        kiosk.evaluate(HEARS_OF_IT)
        for page in (kiosk, staff):
            wait_until(lambda p=page: call_state(p) == "connected", within=60,
                       what="connected again")
        assert "waiting" not in staff.evaluate("window.__seen"), staff.evaluate("window.__seen")

        assert frames_rising(staff, "audioPackets", by=50)
        kiosk.click("#leave")
        wait_until(lambda: call_state(staff) == "waiting", what="the staff side waits")
        assert staff.evaluate("window.__seen").count("reconnecting") == 1, \
            staff.evaluate("window.__seen")
    finally:
        for context in contexts:
            context.close()


SILENCE = """(on) => {
  // The page tunes its senders again on every change of the link (its start over, the
  // other side's news): while silenced, every encoding it sets stays off.
  window.__silenced = on;
  if (!window.__silenceHeld) {
    window.__silenceHeld = true;
    const set = RTCRtpSender.prototype.setParameters;
    RTCRtpSender.prototype.setParameters = function (p, ...rest) {
      if (window.__silenced) p.encodings.forEach((e) => { e.active = false; });
      return set.call(this, p, ...rest);
    };
  }
  for (const peer of window.visioCall.peers.values()) {
    for (const sender of peer.pc.getSenders()) {
      const p = sender.getParameters();
      p.encodings.forEach((e) => { e.active = !on; });
      sender.setParameters(p);
    }
  }
}"""

WATCH = """() => {
  window.__seen = [];
  const el = document.getElementById("call-state");
  new MutationObserver(() => {
    if (window.__seen.at(-1) !== el.dataset.callState) window.__seen.push(el.dataset.callState);
  }).observe(el, {attributes: true});
}"""


def test_the_cut_shows_at_once_and_ends_when_media_is_back(links: Live, browser: Any) -> None:
    """The staff side stops sending anything (every encoding off, as when the link is cut
    one way): the kiosk says "connexion interrompue" (ICE still says connected), and
    "connecté" again once the media comes back."""
    kiosk, staff, contexts = _cateau_and_caf59(links, browser)
    try:
        # Audio, not video: real measures drive these pages, and on a loaded machine they
        # may well put the call in audio only by themselves.
        assert frames_rising(kiosk, "audioPackets", by=50)
        kiosk.evaluate(WATCH)
        staff.evaluate(SILENCE, True)
        # The state, the link's problem and its quality are each set by their own tick:
        # on a loaded machine, one may follow the other by a moment.
        def cut_shown() -> bool:
            link = _link(kiosk)
            return (call_state(kiosk) == "interrupted" and link["problem"] == "interrupted"
                    and link["quality"] == "very-weak")

        wait_until(cut_shown, within=15, what="the cut shown (state, problem, quality)")
        assert kiosk.inner_text("#call-state") == "Connexion interrompue ; rétablissement…"
        assert kiosk.evaluate("window.visioCall.link.interruptedAt") > 0
        staff.evaluate(SILENCE, False)
        wait_until(lambda: call_state(kiosk) == "connected", within=30, what="connected again")
        assert _link(kiosk)["problem"] == ""
        assert frames_rising(kiosk, "audioPackets", by=50)
        assert "interrupted" in kiosk.evaluate("window.__seen")
    finally:
        for context in contexts:
            context.close()


def test_ice_failure_shows_the_fallback_at_once_and_names_the_problem(
        links: Live, browser: Any) -> None:
    """Both sides in the room, no path between them (relay only, through a TURN server
    that does not answer): each says "la connexion ne s'établit pas", never that it waits
    for the other, and shows its own number to call: at once when ICE says failed, at the
    latest once the fallback delay has passed."""
    dead = _free_port()
    servers = [{"urls": [f"turn:127.0.0.1:{dead}?transport=udp"], "username": "u",
                "credential": "p"}]
    appointment = links.appointment_now(commune="Bruay-sur-l'Escaut", operator="CARSAT-HDF",
                                        staff=2, theme="retraite")
    contexts = []
    try:
        pages = []
        for email in ("agent.bruay-sur-l-escaut@visio.test", "staff.carsat-hdf@visio.test"):
            context = browser.new_context(locale="fr-FR")
            context.add_init_script(script=f"({RELAY_ONLY})({json.dumps(servers)})")
            contexts.append(context)
            page = context.new_page()
            log_in(page, links.url, email)
            page.goto(f"{links.url}/call/{appointment}")
            pages.append(page)
        for page in pages:
            wait_until(lambda p=page: call_state(p) != "waiting", within=30,
                       what="the other side seen")
        for page in pages:
            wait_until(lambda p=page: call_state(p) == "no-connection",
                       within=FALLBACK_SECONDS + 60, what="the problem named")
            assert page.inner_text("#call-state") == "La connexion ne s'établit pas."
            assert page.locator("#fallback").is_visible()
        kiosk, staff = pages
        assert "+33 1 99 00 00 59" in kiosk.inner_text("#fallback")
        assert "usager" in staff.inner_text("#fallback")
    finally:
        for context in contexts:
            context.close()


TCP_CANDIDATES = """async () => {
  const out = [];
  for (const p of window.visioCall.peers.values()) {
    const report = await p.pc.getStats();
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = report.get(s.selectedCandidatePairId);
        const local = report.get(pair.localCandidateId);
        out.push({type: local.candidateType, relayProtocol: local.relayProtocol || null});
      }
    });
  }
  return out;
}"""


def test_tcp_relay_when_udp_is_blocked(links: Live, browser: Any, tmp_path: Path) -> None:
    """Both browsers reach the TURN server over TCP only (relay only, a turn: URL with
    transport=tcp: no UDP leaves them): the call connects through the relay, video
    frames rise on both sides, and the indicator says good."""
    from signaling.turn import turn_credentials
    from tests.coturn import SECRETS, running_coturn

    appointment = links.appointment_now(commune="Hondschoote", operator="SFP-TF", staff=1,
                                        theme="retraite", booth=3)
    with running_coturn(tmp_path) as turn:
        contexts = []
        try:
            pages = []
            for email, who in ((AGENT, "kiosk"), ("staff.sfp-tf@visio.test", "staff")):
                username, password = turn_credentials(
                    secret=SECRETS[0], peer_id=who, ttl=600, now=datetime.now(UTC))
                url = turn.url.split("?")[0] + "?transport=tcp"
                servers = [{"urls": [url], "username": username, "credential": password}]
                context = browser.new_context(locale="fr-FR")
                context.add_init_script(script=f"({RELAY_ONLY})({json.dumps(servers)})")
                contexts.append(context)
                page = context.new_page()
                log_in(page, links.url, email)
                page.goto(f"{links.url}/call/{appointment}")
                pages.append(page)
            for page in pages:
                wait_until(lambda p=page: call_state(p) == "connected", what="connected")
                assert page.evaluate(SELECTED_TYPES) == ["relay"]
                assert page.evaluate(TCP_CANDIDATES) == [{"type": "relay",
                                                          "relayProtocol": "tcp"}]
                assert frames_rising(page)
                assert inbound(page)["audioPackets"] > 0
        finally:
            for context in contexts:
                context.close()
