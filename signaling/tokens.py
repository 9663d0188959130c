"""Signed join tokens (EdDSA JWTs) naming one participant of one appointment."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .protocol import CloseCode

AUDIENCE = "visio-signaling"
ALGORITHM = "EdDSA"
# Tolerated clock drift between the issuing host and the signaling instance.
LEEWAY_SECONDS = 5


class TokenRefused(Exception):
    """A join token was refused; ``code`` is the WebSocket close code to use."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class JoinClaims:
    """What a verified join token says."""

    appointment_id: str
    participant: str
    role: str
    not_before: datetime
    expires_at: datetime
    kid: str
    #: The appointment's version when the token was issued (claim ``ver``), if it has one.
    version: int | None = None


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """Return the key id of a public key: 16 hex chars of SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def derive_private_key(secret: str) -> Ed25519PrivateKey:
    """Derive a deterministic Ed25519 key from a secret string (HKDF-SHA256 seed)."""
    if not secret:
        raise ValueError("secret must not be empty")
    seed = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"visio-signaling-join-token-v1",
        info=b"ed25519-seed",
    ).derive(secret.encode("utf-8"))
    return Ed25519PrivateKey.from_private_bytes(seed)


def issue_join_token(
    *,
    private_key: Ed25519PrivateKey,
    kid: str,
    appointment_id: str,
    participant: str,
    role: str,
    not_before: datetime,
    expires_at: datetime,
    version: int | None = None,
) -> str:
    """Sign a join token for one participant of one appointment (at ``version`` of it)."""
    if not_before.tzinfo is None or expires_at.tzinfo is None:
        raise ValueError("not_before and expires_at must be timezone-aware")
    payload = {
        "aud": AUDIENCE,
        "sub": participant,
        "apt": appointment_id,
        "role": role,
        "nbf": int(not_before.timestamp()),
        "exp": int(expires_at.timestamp()),
        "iat": int(datetime.now(UTC).timestamp()),
    }
    if version is not None:
        payload["ver"] = int(version)
    return jwt.encode(payload, private_key, algorithm=ALGORITHM, headers={"kid": kid})


def verify_join_token(
    token: str, *, public_keys: Mapping[str, Ed25519PublicKey], now: datetime
) -> JoinClaims:
    """Verify a join token at ``now``; raise TokenRefused with a distinct code per cause."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise TokenRefused(CloseCode.TOKEN_INVALID, "malformed token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRefused(CloseCode.TOKEN_INVALID, "malformed token") from None
    # The algorithm is pinned: anything but EdDSA (HS256 key confusion, "none") is refused
    # before any key is looked up.
    if header.get("alg") != ALGORITHM:
        raise TokenRefused(CloseCode.TOKEN_ALGORITHM, "token algorithm not accepted")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in public_keys:
        raise TokenRefused(CloseCode.TOKEN_UNKNOWN_KEY, "token signed by an unknown key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            public_keys[kid],
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            leeway=LEEWAY_SECONDS,
            options={
                "require": ["exp", "nbf", "aud", "sub", "apt", "role"],
                "verify_exp": False,
                "verify_nbf": False,
            },
        )
    except jwt.InvalidAlgorithmError:
        raise TokenRefused(CloseCode.TOKEN_ALGORITHM, "token algorithm not accepted") from None
    except jwt.PyJWTError:
        raise TokenRefused(CloseCode.TOKEN_INVALID, "invalid token") from None
    # Times are checked here against the injected clock rather than PyJWT's wall clock.
    exp, nbf = claims["exp"], claims["nbf"]
    if not isinstance(exp, int) or not isinstance(nbf, int):
        raise TokenRefused(CloseCode.TOKEN_INVALID, "invalid token")
    ts = now.timestamp()
    if ts > exp + LEEWAY_SECONDS:
        raise TokenRefused(CloseCode.TOKEN_EXPIRED, "token expired")
    if ts < nbf - LEEWAY_SECONDS:
        raise TokenRefused(CloseCode.TOKEN_NOT_YET_VALID, "token not yet valid")
    apt, sub, role = claims["apt"], claims["sub"], claims["role"]
    if not all(isinstance(v, str) and v and len(v) <= 200 for v in (apt, sub, role)):
        raise TokenRefused(CloseCode.TOKEN_INVALID, "invalid token")
    version = claims.get("ver")
    if version is not None and (type(version) is not int or version < 0):
        raise TokenRefused(CloseCode.TOKEN_INVALID, "invalid token")
    return JoinClaims(
        appointment_id=apt,
        participant=sub,
        role=role,
        not_before=datetime.fromtimestamp(nbf, UTC),
        expires_at=datetime.fromtimestamp(exp, UTC),
        kid=kid,
        version=version,
    )
