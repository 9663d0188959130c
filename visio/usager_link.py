"""The usager's link ``/u/{token}``: a short signed token for one appointment.

The token is ``base64url(kid ‖ appointment uuid ‖ expiry ‖ tag)``: kid is one byte that
pins the algorithm (1 = HMAC-SHA-256 truncated to 128 bits, key derived from the
secret), the expiry is the appointment's end in Unix seconds. No algorithm is read from
the token itself. It stays short (50 characters) so the link fits in one SMS segment.
Opening it is not a login: it shows one appointment and offers to cancel it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

KID = 1
_TAG = 16
_LENGTH = 1 + 16 + 4 + _TAG


@dataclass(frozen=True, slots=True)
class LinkKey:
    """The HMAC key of usager links (and of the cancel form's CSRF field)."""

    key: bytes

    @classmethod
    def from_secret(cls, secret: str) -> LinkKey:
        """A key derived from the application secret, for this purpose only."""
        return cls(hmac.new(secret.encode(), b"visio usager link v1", hashlib.sha256).digest())

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self.key, payload, hashlib.sha256).digest()[:_TAG]

    def issue(self, appointment_id: str, expires_at: datetime) -> str:
        """A token for ``appointment_id`` valid until ``expires_at``."""
        payload = (bytes([KID]) + uuid.UUID(appointment_id).bytes
                   + struct.pack(">I", int(expires_at.timestamp())))
        return base64.urlsafe_b64encode(payload + self._tag(payload)).rstrip(b"=").decode()

    def verify(self, token: str, now: datetime) -> str | None:
        """The appointment id, or None for a wrong, altered or expired token."""
        if len(token) > 64 or not token.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) != _LENGTH or raw[0] != KID:
            return None
        payload, tag = raw[:-_TAG], raw[-_TAG:]
        if not hmac.compare_digest(tag, self._tag(payload)):
            return None
        (expiry,) = struct.unpack(">I", payload[17:21])
        if now >= datetime.fromtimestamp(expiry, tz=UTC):
            return None
        return str(uuid.UUID(bytes=payload[1:17]))

    def csrf(self, token: str) -> str:
        """The cancel form's hidden field: bound to this token, unguessable without key."""
        return hmac.new(self.key, b"csrf:" + token.encode(), hashlib.sha256).hexdigest()[:32]


def link(base_url: str, token: str) -> str:
    """The full URL of the usager's page."""
    return f"{base_url.rstrip('/')}/u/{token}"
