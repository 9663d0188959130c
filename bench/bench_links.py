"""``make bench-links``: calls on emulated links (issue 18).

Two Debian Chromium pages in a call: the kiosk's behind the user-space link emulator
(tests/links: its own network namespace, a forwarder applying loss, a rate-limited
drop-tail queue and a delay per direction), the staff member's on the server's side, with
fake devices. For each condition of the issue's table it runs one call of ``--seconds``
(75 by default), samples getStats() on both sides every second (every quarter second
around a cut), and prints, over the last 60 s of the call (a minute: the issue's targets
count freezes a minute): connected after, the kiosk's
video (resolution, fps, kbit/s), the fps the staff member receives, freezes, audio
concealment each way, RTT, what the pages said, and the time to audio only. The page is
whichever this tree serves (``--label`` names it in the table). The 1 Mbit/s uplink row
films a camera-like y4m (moving, textured, noisy) instead of the fake device's pattern.

Before the calls it measures the emulator's own added round trip (UDP pings through it at
rate ∞ and delay 0) beside a plain veth pair in the same run (the baseline).

Writes the tables between the README's ``bench-links`` markers (``--no-readme``: not).
Needs root (TAP devices, network namespaces), Chromium, Playwright and coturn.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.links.call import LinkedCall, camera_like_y4m, linked_call, stats  # noqa: E402
from tests.links.link import CLEAN, Condition, Way, delay_report  # noqa: E402

README = ROOT / "README.md"
START = "<!-- bench-links:start -->"
END = "<!-- bench-links:end -->"
WINDOW = 60.0  # seconds: the statistics are over the call's last minute
CUT_AT = 15.0  # seconds after connecting
CUT_SECONDS = 5.0
#: Seconds after connecting: the kiosk presses Audio only. Early: on this link the page
#: goes audio only by itself within seconds, and its button then offers "Back to video"
#: (pressed, that would measure the opposite). Pressed only while it offers audio only.
PRESS_AT = 1.0
STALL = 4.0  # seconds without a decoded frame: the video has stopped
#: Main's call page before issue 18 ("today"): its call.js is served in place of this
#: tree's when they differ, so both run on the same server, link and machine.
TODAY_REV = "ab8f0b2"


@dataclass(frozen=True)
class Run:
    label: str
    condition: Condition
    action: str | None = None  # "audio-only" or "cut"
    camera: bool = False


def _sym(rate: float, delay: float, loss: float) -> Condition:
    return Condition.symmetric(f"{rate} kbit/s", rate_kbps=rate, delay_ms=delay, loss=loss)


RUNS = [
    Run("none", CLEAN),
    Run("8 Mbit/s down, 1 up, 30 ms (camera-like source)",
        Condition("8/1", up=Way(rate_kbps=1000, delay_ms=30),
                  down=Way(rate_kbps=8000, delay_ms=30)), camera=True),
    Run("1 Mbit/s, 80 ms, 1 % loss", _sym(1000, 80, 0.01)),
    Run("300 kbit/s, 150 ms, 3 % loss", _sym(300, 150, 0.03)),
    Run("100 kbit/s, 200 ms, 5 % loss", _sym(100, 200, 0.05)),
    Run("100 kbit/s, 200 ms, 5 %, kiosk presses Audio only", _sym(100, 200, 0.05),
        action="audio-only"),
    Run("5 s total cut", CLEAN, action="cut"),
    Run("UDP blocked", Condition("udp", udp_blocked=True)),
]


@dataclass
class Sample:
    at: float
    kiosk: dict[str, Any]
    staff: dict[str, Any]


@dataclass
class Result:
    run: Run
    variant: str = ""
    connected_after: float | None = None
    samples: list[Sample] = field(default_factory=list)
    reference: float = 0.0  # connect (or the press) instant, for "audio only after"
    cut: tuple[float, float] | None = None
    cut_wall: float | None = None  # time.time() at the cut (pages date theirs by Date.now())
    error: str | None = None
    setup: float = 0.0  # seconds to open both pages (not in "connected after")
    note: str | None = None


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _connected(page: Any) -> bool:
    return bool(page.get_attribute("#call-state", "data-call-state") == "connected")


def _call(harness: LinkedCall, run: Run, browsers: dict[bool, Any], seconds: float,
          query: str, variant: str, page_js: str | None) -> Result:
    result = Result(run, variant)
    began = time.monotonic()
    if run.camera not in browsers:
        video = camera_like_y4m(_made(ROOT / "var") / "bench-links-camera.y4m") \
            if run.camera else None
        browsers[run.camera] = harness.kiosk_browser(video_file=video)
    appointment = harness.appointment_now()
    harness.link.set(CLEAN)
    kiosk, staff, loaded = harness.open_pages(
        browsers[run.camera], appointment, query=query,
        before_staff=lambda: harness.link.set(run.condition), page_js=page_js)
    result.setup = loaded - began
    states: list[Sample] = []
    deadline = loaded + 60
    while time.monotonic() < deadline:
        if _connected(kiosk) and _connected(staff):
            result.connected_after = time.monotonic() - loaded
            break
        states.append(Sample(time.monotonic(), {"state": kiosk.get_attribute(
            "#call-state", "data-call-state")}, {"state": staff.get_attribute(
                "#call-state", "data-call-state")}))
        time.sleep(0.1)
    else:
        result.error = "never connected in 60 s"
    start = time.monotonic()
    result.reference = start
    end = start + seconds
    done: set[str] = set()
    while time.monotonic() < end:
        now = time.monotonic() - start
        if run.action == "audio-only" and now >= PRESS_AT and "press" not in done:
            if kiosk.get_attribute("#audio-only", "aria-pressed") == "true":
                result.note = "already audio only by itself at the press: not pressed"
            else:
                kiosk.click("#audio-only")
            result.reference = time.monotonic()
            done.add("press")
        if run.action == "cut" and now >= CUT_AT and "cut" not in done:
            harness.link.cut(CUT_SECONDS)
            result.cut = (time.monotonic(), time.monotonic() + CUT_SECONDS)
            result.cut_wall = time.time()
            done.add("cut")
        try:
            result.samples.append(Sample(time.monotonic(), stats(kiosk), stats(staff)))
        except Exception as err:  # a page mid-reload: the next sample counts
            result.error = f"{type(err).__name__} while sampling"
        fine = run.action == "cut" and CUT_AT - 1 <= now <= CUT_AT + CUT_SECONDS + 4
        time.sleep(0.25 if fine else 1.0)
    result.samples = [*[Sample(s.at, {**s.kiosk}, {**s.staff}) for s in states
                        if s.kiosk.get("state")], *result.samples]
    harness.link.set(CLEAN)
    return result


# ------------------------------------------------------------------ the table


def _delta(window: list[Sample], side: str, *path: str) -> tuple[float, float]:
    """(change of a counter, seconds) between the window's first and last full samples."""
    full = [s for s in window if "inVideo" in getattr(s, side)]
    if len(full) < 2:
        return 0.0, 0.0

    def value(sample: Sample) -> float:
        item: Any = getattr(sample, side)
        for key in path:
            item = item[key]
        return float(item)

    return value(full[-1]) - value(full[0]), full[-1].at - full[0].at


def _rate(window: list[Sample], side: str, *path: str, scale: float = 1.0) -> float | None:
    change, seconds = _delta(window, side, *path)
    return change * scale / seconds if seconds > 0 else None


def _ratio(window: list[Sample], side: str) -> str:
    concealed, _ = _delta(window, side, "inAudio", "concealed")
    samples, _ = _delta(window, side, "inAudio", "samples")
    return f"{100 * concealed / samples:.1f} %" if samples > 0 else "—"


def _states(samples: list[Sample], side: str) -> str:
    """The page's successive states (with "audio only" and its cause when the page says
    so), then how often its link indicator showed each quality."""
    seen: list[str] = []
    qualities: dict[str, int] = {}
    for sample in samples:
        item = getattr(sample, side)
        word = str(item.get("state"))
        if item.get("audioOnlyShown"):
            word += f" + audio only ({item.get('audioOnlyCause') or '?'})"
        if not seen or seen[-1] != word:
            seen.append(word)
        if item.get("quality"):
            qualities[item["quality"]] = qualities.get(item["quality"], 0) + 1
    text = " → ".join(seen) or "—"
    if qualities:
        total = sum(qualities.values())
        text += " [" + ", ".join(f"{q} {100 * n / total:.0f} %"
                                 for q, n in sorted(qualities.items())) + "]"
    return text


def _said_audio_only(samples: list[Sample], since: float) -> float | None:
    """Seconds from ``since`` until both pages say audio only (None: never)."""
    for s in samples:
        if s.at >= since and s.kiosk.get("audioOnlyShown") and s.staff.get("audioOnlyShown"):
            return s.at - since
    return None


def _stalled_at(samples: list[Sample], since: float) -> float | None:
    """The first instant after ``since`` from which the staff member decodes no video
    frame for STALL seconds (the kiosk's video stopped), as seconds after ``since``."""
    full = [s for s in samples if "inVideo" in s.staff and s.at >= since]
    for i, first in enumerate(full):
        frames = first.staff["inVideo"]["frames"]
        later = [s for s in full[i:] if s.at <= first.at + STALL]
        if later[-1].at - first.at >= STALL - 1.1 and all(
                s.staff["inVideo"]["frames"] == frames for s in later):
            # Back to the last sample where frames still rose.
            return max(0.0, first.at - since)
    return None


def _back_after(samples: list[Sample], after: float, side: str, *path: str) -> float | None:
    """Seconds from ``after`` to the first sample where the counter rose again."""
    full = [s for s in samples if "inVideo" in getattr(s, side)]
    before = [s for s in full if s.at <= after]
    if not before:
        return None

    def value(sample: Sample) -> float:
        item: Any = getattr(sample, side)
        for key in path:
            item = item[key]
        return float(item)

    base = value(before[-1])
    for sample in full:
        if sample.at > after and value(sample) > base:
            return sample.at - after
    return None


def _sent(window: list[Sample]) -> str:
    """What each side sent over the window, kbit/s: its transport (RTP and RTCP with their
    headers), of which audio and video (RTP with headers), and the audio's packets a
    second: what fills a slow link."""
    if not all("sent" in s.kiosk and "sent" in s.staff for s in window):
        return ""
    parts = []
    for side in ("kiosk", "staff"):
        kbps = {key: _rate(window, side, "sent", key, scale=8 / 1000) or 0.0
                for key in ("transport", "audio", "video")}
        packets = _rate(window, side, "sent", "audioPackets") or 0.0
        parts.append(f"{side} {kbps['transport']:.0f} (audio {kbps['audio']:.0f} in "
                     f"{packets:.0f} packets/s, video {kbps['video']:.0f})")
    return "sent, kbit/s: " + ", ".join(parts)


def _cut_shown(result: Result, side: str) -> list[float]:
    """Seconds from the cut to each sample of ``side`` that no longer says connected; the
    first is exact (the page's own Date.now() when it showed the cut, against the cut's
    time.time() on the same machine) where the page records it, else as sampled."""
    assert result.cut is not None
    cut_start = result.cut[0]
    if result.cut_wall is not None:
        dated = sorted({float(getattr(s, side)["interruptedAt"]) / 1000 - result.cut_wall
                        for s in result.samples
                        if getattr(s, side).get("interruptedAt")
                        and float(getattr(s, side)["interruptedAt"]) / 1000 >= result.cut_wall})
        if dated:
            return dated
    return [s.at - cut_start for s in result.samples
            if s.at >= cut_start and getattr(s, side).get("state") != "connected"]


def _fmt(value: float | None, pattern: str = "{:.0f}", none: str = "—") -> str:
    return none if value is None else pattern.format(value)


def row(result: Result) -> list[str]:
    run = result.run
    full = [s for s in result.samples if "inVideo" in s.staff and "inVideo" in s.kiosk]
    if not full:
        return [run.label, result.variant, result.error or "—", *["—"] * 7]
    end = full[-1].at
    window = [s for s in full if s.at >= end - WINDOW]
    last = window[-1].kiosk["outVideo"]
    fps = _rate(window, "kiosk", "outVideo", "frames")
    kbps = _rate(window, "kiosk", "outVideo", "bytes", scale=8 / 1000)
    sending = last["width"] and (fps or 0) > 0.5
    size = f"{last['width']}\u00d7{last['height']}" if sending else "none"
    video = f"{size} @ {_fmt(fps)} fps, {_fmt(kbps)} kbit/s"
    received = _fmt(_rate(window, "staff", "inVideo", "frames"), "{:.1f}")
    freezes, _ = _delta(window, "staff", "inVideo", "freezes")
    frozen, _ = _delta(window, "staff", "inVideo", "frozen")
    rtts = [float(s.staff["rtt"]) for s in window if s.staff.get("rtt") is not None]
    rtt = (f"{statistics.median(rtts):.0f} ms (max {max(rtts):.0f})" if rtts else "—")
    says = f"kiosk: {_states(result.samples, 'kiosk')}; staff: {_states(result.samples, 'staff')}"
    notes: list[str] = []
    if run.action == "audio-only":
        stop = _stalled_at(result.samples, result.reference)
        audio_only = f"video stopped {_fmt(stop, '{:.1f}')} s after the press" \
            if stop is not None else "video never stopped"
    else:
        stop = _stalled_at(result.samples, result.reference)
        audio_only = f"video stopped {stop:.1f} s after connecting" if stop is not None \
            else "—"
    said = _said_audio_only(result.samples, result.reference)
    if said is not None:
        audio_only += f"; both pages say audio only after {said:.1f} s"
    if result.cut is not None:
        cut_end = result.cut[1]
        shown = _cut_shown(result, "kiosk")
        shown_staff = _cut_shown(result, "staff")
        notes.append("cut seen after: kiosk " + (_fmt(shown[0], "{:.1f} s") if shown else
                                                "never") + ", staff " +
                     (_fmt(shown_staff[0], "{:.1f} s") if shown_staff else "never"))
        notes.append("after the link: audio " + _fmt(_back_after(
            result.samples, cut_end, "staff", "inAudio", "packets"), "{:.2f} s") +
            ", video " + _fmt(_back_after(result.samples, cut_end, "staff", "inVideo",
                                          "frames"), "{:.2f} s") + " (at the staff's side)")
        audio_only = "—"
    sent = _sent(window)
    if sent:
        notes.append(sent)
    kiosk_pair = window[-1].kiosk
    if kiosk_pair.get("candidate") == "relay":
        notes.append(f"kiosk through TURN over {kiosk_pair.get('protocol')}")
    if result.note:
        notes.append(result.note)
    if result.error:
        notes.append(result.error)
    return [run.label, result.variant,
            _fmt(result.connected_after, "{:.1f} s", "not connected"), video,
            received, f"{freezes:.0f} ({frozen:.1f} s frozen)",
            f"{_ratio(window, 'staff')} / {_ratio(window, 'kiosk')}", rtt, says,
            audio_only + ("; " + "; ".join(notes) if notes else "")]


HEADER = ["link (kiosk side)", "page", "connected after", "kiosk's video sent",
          "fps received (staff)", "freezes (staff)", "audio concealment (at staff / at kiosk)",
          "RTT (staff)", "the pages say", "audio only after; notes"]


def markdown(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in r) + " |" for r in rows]
    return "\n".join(lines)


def write_readme(text: str) -> None:
    readme = README.read_text()
    if START not in readme or END not in readme:
        print(f"README.md has no {START} … {END} section; not written.")
        return
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def _variants(pages: str) -> list[tuple[str, str | None]]:
    """(name, call.js to serve instead of this tree's, or None) for each page measured."""
    served = (ROOT / "visio" / "web" / "static" / "call.js").read_text()
    today = subprocess.run(["git", "-C", str(ROOT), "show",
                            f"{TODAY_REV}:visio/web/static/call.js"],
                           capture_output=True, text=True, check=False).stdout
    if not today or today == served:
        return [(f"today (= this tree, {TODAY_REV})" if today else "this tree's", None)]
    chosen: dict[str, list[tuple[str, str | None]]] = {
        "both": [("today", today), ("new", None)], "served": [("new", None)],
        "today": [("today", today)]}
    return [(f"{name} ({TODAY_REV})" if js else f"{name} (this tree)", js)
            for name, js in chosen[pages]]


def _load() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


def revision() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %cs"],
                          capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "visio"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return done.stdout.strip() + (" + uncommitted changes" if dirty else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=75.0,
                        help="length of each call once connected (the statistics are "
                             "over its last 60 s)")
    parser.add_argument("--only", action="append", default=[],
                        help="run the conditions whose label contains this (repeatable)")
    parser.add_argument("--pages", choices=["both", "served", "today"], default="both",
                        help="both: main's page before issue 18 (its call.js from "
                             f"{TODAY_REV}) and this tree's, when they differ; served: "
                             "this tree's only; today: the one before only")
    parser.add_argument("--query", default="",
                        help="appended to the call pages' address (e.g. a switch the page "
                             "offers)")
    parser.add_argument("--no-readme", action="store_true", help="do not write README.md")
    parser.add_argument("--dump", type=Path, default=None,
                        help="write every call's samples (both pages' getStats() totals "
                             "and link measures, once a second) to this JSON file")
    args = parser.parse_args()
    runs = [r for r in RUNS if not args.only or any(o in r.label for o in args.only)]
    started = time.monotonic()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-links-") as work, \
            linked_call(Path(work)) as harness:
        own = delay_report(harness.link, count=500)
        delay_table = markdown([[
            "plain veth pair (baseline)", f"{own['baseline_p50']:.2f} ms",
            f"{own['baseline_p99']:.2f} ms", "—"], [
            "through the emulator (rate ∞, delay 0)", f"{own['p50']:.2f} ms",
            f"{own['p99']:.2f} ms", f"{own['max']:.2f} ms"]],
            ["UDP ping round trip, 500 pings", "p50", "p99", "max"])
        print(f"Load average before: {_load()}\n")
        print("## The emulator's own delay\n")
        print(delay_table, flush=True)
        added = own["p99"] - own["baseline_p99"]
        print(f"\nAdded at p99: {added:.2f} ms (target < 10 ms: "
              f"{'met' if own['p99'] < 10 else 'missed'})\n", flush=True)
        browsers: dict[bool, Any] = {}
        variants = _variants(args.pages)
        print("Pages: " + "; ".join(name for name, _ in variants) + "\n", flush=True)
        for run in runs:
            for variant, page_js in variants:
                began = time.monotonic()
                try:
                    result = _call(harness, run, browsers, args.seconds, args.query,
                                   variant, page_js)
                except Exception as err:  # the other conditions still count
                    result = Result(run, variant, error=f"{type(err).__name__}: {err}"[:200])
                    harness.link.set(CLEAN)
                results.append(result)
                print(f"- {run.label}, {variant}: {time.monotonic() - began:.0f} s (pages "
                      f"opened in {result.setup:.0f} s, connected after "
                      f"{_fmt(result.connected_after, '{:.1f} s')})"
                      + (f" ({result.error})" if result.error else ""), flush=True)
        load = _load()
    if args.dump is not None:
        args.dump.write_text(json.dumps([{
            "label": r.run.label, "variant": r.variant, "reference": r.reference,
            "connected_after": r.connected_after,
            "samples": [{"at": s.at, "kiosk": s.kiosk, "staff": s.staff} for s in r.samples],
        } for r in results], indent=1))
    table = markdown([row(r) for r in results], HEADER)
    print(f"\n## Calls on emulated links ({revision()})\n")
    print(table)
    total = time.monotonic() - started
    print(f"\n(bench-links: {total:.0f} s; load average at the end: {load})")
    if not args.no_readme and not args.only:
        write_readme(
            f"Measured by `make bench-links` on {revision()}; calls of "
            f"{args.seconds:.0f} s, statistics over the last {WINDOW:.0f} s; load average "
            f"(1, 5, 15 min) at the end: {load} on {os.cpu_count()} cores. The emulator's "
            f"own round trip:\n\n{delay_table}\n\n{table}")
    return 0 if all(r.error is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

