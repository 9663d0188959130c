"""The usager's link token: one appointment, pinned algorithm, expiry (pure)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
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


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_a_token_has_exactly_one_accepted_spelling() -> None:
    """Spare bits set in the last character, padding, or a character outside base64url
    (which a lenient decoder would skip): each other spelling of the same bytes is refused."""
    key = LinkKey.from_secret("s" * 40)
    now = END - timedelta(hours=1)
    appointment = str(uuid.uuid4())
    token = key.issue(appointment, END)
    # 50 characters carry 300 bits for 296: the last character's 4 low bits are spare.
    last = ALPHABET.index(token[-1])
    assert last & 0b1111 == 0
    spellings = [token[:-1] + ALPHABET[last | bit] for bit in (1, 2, 4, 8)]
    spellings += [token + "=", token + "==", token[:20] + "." + token[20:],
                  token[:20] + "+" + token[20:], token[:20] + "\n" + token[20:],
                  token.replace("-", "+").replace("_", "/")]
    for spelling in spellings:
        if spelling != token:
            assert key.verify(spelling, now) is None, spelling
    assert key.verify(token, now) == appointment


def test_a_token_does_not_show_its_appointment() -> None:
    """The appointment id is sealed: neither its bytes nor its text are in the token, and
    two appointments' tokens share nothing but the kid."""
    key = LinkKey.from_secret("s" * 40)
    first, second = uuid.uuid4(), uuid.uuid4()
    token = key.issue(str(first), END)
    raw = base64.urlsafe_b64decode(token + "==")
    assert first.bytes not in raw
    assert first.hex not in token
    assert str(first) not in token
    other = base64.urlsafe_b64decode(key.issue(str(second), END) + "==")
    assert raw[0] == other[0]
    assert sum(a == b for a, b in zip(raw[1:], other[1:], strict=True)) < 8


def test_links_sent_before_stay_valid_until_they_expire() -> None:
    """A link of the first kind (kid 1, HMAC) already in an SMS still opens its
    appointment until the end; a forged one does not."""
    key = LinkKey.from_secret("s" * 40)
    appointment = str(uuid.uuid4())
    payload = bytes([1]) + uuid.UUID(appointment).bytes + struct.pack(">I", int(END.timestamp()))
    tag = hmac.new(key.key, payload, hashlib.sha256).digest()[:16]
    old = base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode()
    assert key.verify(old, END - timedelta(seconds=1)) == appointment
    assert key.verify(old, END) is None
    forged = base64.urlsafe_b64encode(payload + bytes(16)).rstrip(b"=").decode()
    assert key.verify(forged, END - timedelta(hours=1)) is None
