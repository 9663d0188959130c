"""The usager's link token: one appointment, pinned algorithm, expiry (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from visio.usager_link import LinkKey

END = datetime(2026, 11, 30, 8, 30, tzinfo=UTC)


def test_token_names_its_appointment_until_the_end() -> None:
    """Valid before the end, refused from the end on; short enough for an SMS."""
    key = LinkKey.from_secret("s" * 40)
    appointment = str(uuid.uuid4())
    token = key.issue(appointment, END)
    assert len(token) == 50
    assert key.verify(token, END - timedelta(seconds=1)) == appointment
    assert key.verify(token, END) is None


def test_altered_or_foreign_tokens_are_refused() -> None:
    """Another key, a changed character, a changed kid or garbage: all refused."""
    key = LinkKey.from_secret("s" * 40)
    token = key.issue(str(uuid.uuid4()), END)
    now = END - timedelta(hours=1)
    assert LinkKey.from_secret("t" * 40).verify(token, now) is None
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    assert key.verify(flipped, now) is None
    assert key.verify("E" + token[1:], now) is None  # another kid
    assert key.verify("not a token", now) is None
    assert key.verify("", now) is None
    assert key.csrf(token) != key.csrf(flipped)
