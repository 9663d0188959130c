"""What a call came to, read from its log: who joined, whether and how fast both sides
connected, for how long, audio only or not, and whether a failure ended it.

Pure: events in, an outcome out. The two seats are the site's kiosk and the operator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

KIOSK = "kiosk"
OPERATOR = "operator"
SIDES = (KIOSK, OPERATOR)


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event of a call log, as the outcome reads it."""

    at: datetime
    kind: str
    role: str
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The call's own outcome, kept beside the appointment's."""

    attempted: bool
    connected: bool
    kiosk_joined: bool
    operator_joined: bool
    seconds_to_connect: float | None
    duration_seconds: float | None
    audio_only: bool
    ended_by_failure: bool

    @property
    def never_joined(self) -> str | None:
        """Who never joined: ``kiosk``, ``operator``, ``both`` or None."""
        missing = [side for side, joined in ((KIOSK, self.kiosk_joined),
                                             (OPERATOR, self.operator_joined)) if not joined]
        if len(missing) == 2:
            return "both"
        return missing[0] if missing else None


def outcome_of(events: Iterable[LoggedEvent]) -> CallOutcome:
    """The outcome of a call from its events (any order).

    Both sides are connected from the instant the later of them first reported
    ``connected``; time to connect runs from the later side's first join to that instant;
    the duration from it to the first leave or failure of either side after it (or the
    last event). Audio only: a side turned its video off while connected. Ended by
    failure: a side reported ``failed`` (WebRTC gave up) after both were connected,
    before anyone left; or, never connected, a side reported ``failed``.
    """
    ordered = sorted(events, key=lambda e: e.at)
    first_join: dict[str, datetime] = {}
    first_connected: dict[str, datetime] = {}
    for e in ordered:
        if e.role not in SIDES:
            continue
        if e.kind == "join":
            first_join.setdefault(e.role, e.at)
        elif e.kind == "connection_state" and e.detail.get("state") == "connected":
            first_connected.setdefault(e.role, e.at)
    connected_at = (max(first_connected[KIOSK], first_connected[OPERATOR])
                    if len(first_connected) == 2 else None)
    to_connect = None
    if connected_at is not None and len(first_join) == 2:
        both_in = max(first_join.values())
        to_connect = max(0.0, (connected_at - both_in).total_seconds())
    duration = None
    audio_only = failed = False
    if connected_at is not None:
        end = ordered[-1].at
        for e in ordered:
            if e.at < connected_at or e.role not in SIDES:
                continue
            if e.kind == "media" and e.detail.get("video") is False:
                audio_only = True
            if e.kind == "leave":
                end = e.at
                break
            if e.kind == "connection_state" and e.detail.get("state") == "failed":
                end, failed = e.at, True
                break
        duration = (end - connected_at).total_seconds()
    else:
        failed = any(e.kind == "connection_state" and e.detail.get("state") == "failed"
                     for e in ordered)
    return CallOutcome(
        attempted=bool(first_join), connected=connected_at is not None,
        kiosk_joined=KIOSK in first_join, operator_joined=OPERATOR in first_join,
        seconds_to_connect=to_connect, duration_seconds=duration, audio_only=audio_only,
        ended_by_failure=failed)
