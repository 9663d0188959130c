"""The usager's link ``/u/{token}``: a short, opaque, authenticated token for one appointment.

The token is ``base64url(kid ‖ sealed)`` without padding, 50 characters, so the link fits
in one SMS segment. kid is one byte that pins the algorithm; no algorithm is read from
the token itself:

- kid 2 (issued now): ``sealed`` is AES-SIV (RFC 5297, 256-bit, key derived from the
  secret, the kid as associated data) of ``appointment uuid ‖ expiry``: 16 bytes of
  synthetic IV then 20 of ciphertext. Nothing in the link tells which appointment it is;
  a changed bit anywhere is refused.
- kid 1 (links sent before): ``appointment uuid ‖ expiry ‖ HMAC-SHA-256/128 tag``, the
  appointment id readable. Still accepted until it expires (at the appointment's end), so
  no message already sent breaks; never issued again.

The expiry is the appointment's end in Unix seconds. A token has exactly one accepted
spelling: the canonical unpadded base64url of its bytes (no ``=``, no spare bits set in
the last character). Opening it is not a login: it shows one appointment and offers to
cancel it.
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

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

KID = 2
_KID_HMAC = 1
_TAG = 16
_BODY = 16 + 4
_LENGTH = 1 + _BODY + _TAG
_MAX_CHARS = 64


@dataclass(frozen=True, slots=True)
class LinkKey:
    """The keys of usager links: HMAC (kid 1 links, the cancel form's CSRF field) and
    AES-SIV (kid 2 links)."""

    key: bytes
    seal_key: bytes = b""

    @classmethod
    def from_secret(cls, secret: str) -> LinkKey:
        """Keys derived from the application secret, for these purposes only."""
        return cls(
            key=hmac.new(secret.encode(), b"visio usager link v1", hashlib.sha256).digest(),
            seal_key=hmac.new(secret.encode(), b"visio usager link v2 aes-siv",
                              hashlib.sha512).digest())

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self.key, payload, hashlib.sha256).digest()[:_TAG]

    def issue(self, appointment_id: str, expires_at: datetime) -> str:
        """A token for ``appointment_id`` valid until ``expires_at``."""
        body = uuid.UUID(appointment_id).bytes + struct.pack(">I", int(expires_at.timestamp()))
        sealed = AESSIV(self.seal_key).encrypt(body, [bytes([KID])])
        return _encode(bytes([KID]) + sealed)

    def verify(self, token: str, now: datetime) -> str | None:
        """The appointment id, or None for a wrong, altered, misspelt or expired token."""
        raw = _decode(token)
        if raw is None or len(raw) != _LENGTH:
            return None
        if raw[0] == KID:
            try:
                body = AESSIV(self.seal_key).decrypt(raw[1:], [raw[:1]])
            except InvalidTag:
                return None
        elif raw[0] == _KID_HMAC:
            payload, tag = raw[:-_TAG], raw[-_TAG:]
            if not hmac.compare_digest(tag, self._tag(payload)):
                return None
            body = payload[1:]
        else:
            return None
        (expiry,) = struct.unpack(">I", body[16:20])
        if now >= datetime.fromtimestamp(expiry, tz=UTC):
            return None
        return str(uuid.UUID(bytes=body[:16]))

    def csrf(self, token: str) -> str:
        """The cancel form's hidden field: bound to this token, unguessable without key."""
        return hmac.new(self.key, b"csrf:" + token.encode(), hashlib.sha256).hexdigest()[:32]


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode(token: str) -> bytes | None:
    """The bytes of a token spelt canonically, else None (one spelling per token: no
    padding, no spare bits, nothing outside the alphabet)."""
    if len(token) > _MAX_CHARS or not token.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _encode(raw) == token else None


def link(base_url: str, token: str) -> str:
    """The full URL of the usager's page."""
    return f"{base_url.rstrip('/')}/u/{token}"
