"""Micro-benchmark of the API contract layer on a 2,000-slot answer, beside the hand path.

Run with ``.venv/bin/python bench/bench_contract.py`` (or through ``bench/run.py``);
``--quick`` runs fewer rounds. No database: 2,000 domain ``Slot`` values shaped like the
booking benchmark's (one fixed site in Europe/Paris, 10 operators, half-hour starts on
four weeks of weekdays, UUID identifiers, no stop).

Two paths, each timed as build + encode + decode of one answer, in the same process:

- contract (what ``GET /api/v1/slots`` does now): ``api.Page[api.Slot]`` built with
  ``visio.api.views.slot``, encoded with ``visio.api.codec.encode`` (msgspec), decoded
  back with ``msgspec.json.decode(..., type=api.Page[api.Slot])``;
- hand (the baseline it replaced): plain dicts as the former
  ``visio/representations.py::slot`` built them (``isoformat`` strings with the site
  zone's offset), ``json.dumps``, then ``json.loads`` and validation written by hand
  (the same checks as the contract's: required fields, types, offset-aware instants).

Rounds alternate which path goes first. Times use ``time.perf_counter()``, with the
server's GC settings (``visio.perf.tune_gc``). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from visio.api import views  # noqa: E402
from visio.api.codec import encode  # noqa: E402
from visio.contract import bodies as api  # noqa: E402
from visio.domain.slot_types import Slot  # noqa: E402
from visio.perf import tune_gc  # noqa: E402

ZONE = "Europe/Paris"
PARIS = ZoneInfo(ZONE)
SLOTS = 2000
OPERATORS = 10
DURATION = timedelta(minutes=30)
WARMUPS = 10
ROUNDS = 200
QUICK_ROUNDS = 30
SlotPage = api.Page[api.Slot]


# ---------------------------------------------------------------- the slots


def domain_slots(count: int = SLOTS) -> list[Slot]:
    """``count`` free slots: weekdays from a fixed Monday, 09:00-17:00, every operator."""
    ids = [tuple(str(uuid.uuid4()) for _ in range(4)) for _ in range(OPERATORS)]
    day = date(2026, 3, 23)  # a Monday; the change to summer time falls inside the weeks
    slots: list[Slot] = []
    while len(slots) < count:
        if day.weekday() < 5:
            wall = datetime.combine(day, clock_time(9), tzinfo=PARIS)
            while wall.hour < 17 and len(slots) < count:
                start = wall.astimezone(UTC)
                for operator_id, desk_id, staff_id, service_id in ids[:count - len(slots)]:
                    slots.append(Slot(start=start, end=start + DURATION,
                                      operator_id=operator_id, desk_id=desk_id,
                                      staff_id=staff_id, service_id=service_id))
                wall += DURATION
        day += timedelta(days=1)
    return slots


# ---------------------------------------------------------------- the contract path


def contract_build(slots: Sequence[Slot]) -> api.Page[api.Slot]:
    return api.Page(items=[views.slot(s, ZONE) for s in slots])


def contract_encode(page: api.Page[api.Slot]) -> bytes:
    return encode(page)


def contract_decode(raw: bytes) -> api.Page[api.Slot]:
    return msgspec.json.decode(raw, type=SlotPage)


# ---------------------------------------------------------------- the hand path


def instant(value: datetime, zone: str) -> str:
    """As the former ``representations.instant``: RFC 3339 with the zone's offset."""
    return value.astimezone(ZoneInfo(zone)).isoformat()


def hand_slot(s: Slot, zone: str) -> dict[str, Any]:
    """As the former ``representations.slot``."""
    return {
        "start": instant(s.start, zone),
        "end": instant(s.end, zone),
        "operator_id": s.operator_id,
        "desk_id": s.desk_id,
        "staff_id": s.staff_id,
        "service_id": s.service_id,
        "stop_id": s.stop_id,
    }


def hand_build(slots: Sequence[Slot]) -> dict[str, Any]:
    """As the former ``context.listing``."""
    return {"items": [hand_slot(s, ZONE) for s in slots], "next_cursor": None}


def hand_encode(page: dict[str, Any]) -> bytes:
    """As the former ``context.ok``: ``json.dumps``, sent as UTF-8."""
    return json.dumps(page).encode()


class Invalid(ValueError):
    """The hand decoder's refusal, naming the field."""


IDS = ("operator_id", "desk_id", "staff_id", "service_id")


def _instant(item: dict[str, Any], name: str, where: str) -> datetime:
    value = item[name]
    if not isinstance(value, str):
        raise Invalid(f"{where}.{name}: expected a date-time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as err:
        raise Invalid(f"{where}.{name}: not a date-time") from err
    if parsed.tzinfo is None:
        raise Invalid(f"{where}.{name}: no offset")
    return parsed


def hand_decode(raw: bytes) -> dict[str, Any]:
    """``json.loads`` and the checks the contract makes, written by hand; the instants
    come back as ``datetime`` (as msgspec gives them)."""
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise Invalid("body: expected an object")
    if "items" not in doc:
        raise Invalid("items: required")
    items = doc["items"]
    if not isinstance(items, list):
        raise Invalid("items: expected a list")
    cursor = doc.get("next_cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise Invalid("next_cursor: expected a text or null")
    out = []
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            raise Invalid(f"{where}: expected an object")
        for name in ("start", "end", *IDS, "stop_id"):
            if name not in item:
                raise Invalid(f"{where}.{name}: required")
        for name in IDS:
            if not isinstance(item[name], str):
                raise Invalid(f"{where}.{name}: expected a text")
        stop_id = item["stop_id"]
        if stop_id is not None and not isinstance(stop_id, str):
            raise Invalid(f"{where}.stop_id: expected a text or null")
        out.append({"start": _instant(item, "start", where),
                    "end": _instant(item, "end", where),
                    "operator_id": item["operator_id"], "desk_id": item["desk_id"],
                    "staff_id": item["staff_id"], "service_id": item["service_id"],
                    "stop_id": stop_id})
    return {"items": out, "next_cursor": cursor}


# ---------------------------------------------------------------- measure


@dataclass(slots=True)
class Measured:
    name: str
    build: Callable[[Sequence[Slot]], Any]
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]
    build_ms: list[float]
    encode_ms: list[float]
    decode_ms: list[float]
    total_ms: list[float]
    size: int = 0

    def once(self, slots: Sequence[Slot], record: bool) -> None:
        t0 = time.perf_counter()
        value = self.build(slots)
        t1 = time.perf_counter()
        raw = self.encode(value)
        t2 = time.perf_counter()
        self.decode(raw)
        t3 = time.perf_counter()
        self.size = len(raw)
        if record:
            self.build_ms.append((t1 - t0) * 1000)
            self.encode_ms.append((t2 - t1) * 1000)
            self.decode_ms.append((t3 - t2) * 1000)
            self.total_ms.append((t3 - t0) * 1000)


def p95(samples: Sequence[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def check_same(slots: Sequence[Slot]) -> None:
    """Both paths say the same thing: same JSON document, same decoded values."""
    contract_raw = contract_encode(contract_build(slots))
    hand_raw = hand_encode(hand_build(slots))
    if json.loads(contract_raw) != json.loads(hand_raw):
        raise AssertionError("the contract and hand paths encode different documents")
    decoded = contract_decode(contract_raw)
    by_hand = hand_decode(hand_raw)
    if [msgspec.structs.asdict(s) for s in decoded.items] != by_hand["items"]:
        raise AssertionError("the contract and hand paths decode different values")
    for item, s in zip(decoded.items, slots, strict=True):
        if item.start != s.start or item.start.utcoffset() != s.start.astimezone(
                PARIS).utcoffset():
            raise AssertionError("a decoded start differs from the domain slot")


def run(quick: bool = False) -> tuple[str, bool]:
    """The markdown table, and True (nothing here can be missed)."""
    tune_gc()
    rounds = QUICK_ROUNDS if quick else ROUNDS
    slots = domain_slots()
    check_same(slots)
    contract = Measured("contract (msgspec Structs)", contract_build, contract_encode,
                     contract_decode, [], [], [], [])
    hand = Measured("hand (dicts + json, baseline)", hand_build, hand_encode, hand_decode,
                 [], [], [], [])
    for _ in range(WARMUPS):
        contract.once(slots, record=False)
        hand.once(slots, record=False)
    for i in range(rounds):
        first, second = (contract, hand) if i % 2 == 0 else (hand, contract)
        first.once(slots, record=True)
        second.once(slots, record=True)
    return table(contract, hand, len(slots), rounds), True


def table(contract: Measured, hand: Measured, count: int, rounds: int) -> str:
    med = statistics.median
    lines = [
        f"{count} slots, {rounds} rounds per path (alternating); times in ms.",
        "",
        "| path | build p50 | encode p50 | decode+validate p50 | total p50 | total p95 "
        "| bytes |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in (contract, hand):
        lines.append(f"| {p.name} | {med(p.build_ms):.2f} | {med(p.encode_ms):.2f} | "
                     f"{med(p.decode_ms):.2f} | {med(p.total_ms):.2f} | "
                     f"{p95(p.total_ms):.2f} | {p.size:,} |")
    lines.append(
        f"| ratio contract / hand | {med(contract.build_ms) / med(hand.build_ms):.2f} | "
        f"{med(contract.encode_ms) / med(hand.encode_ms):.2f} | "
        f"{med(contract.decode_ms) / med(hand.decode_ms):.2f} | "
        f"{med(contract.total_ms) / med(hand.total_ms):.2f} | "
        f"{p95(contract.total_ms) / p95(hand.total_ms):.2f} | "
        f"{contract.size / hand.size:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROUNDS} rounds")
    args = parser.parse_args()
    text, _complete = run(quick=args.quick)
    print(text)


if __name__ == "__main__":
    main()
