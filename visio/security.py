"""Passwords (argon2id) and opaque API bearer tokens (stored as SHA-256 digests)."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


def password_hasher() -> PasswordHasher:
    """argon2id at OWASP's minimum or above: m = 19 MiB, t = 2, p = 1."""
    return PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)


def hash_password(hasher: PasswordHasher, password: str) -> str:
    """Hash a password for storage."""
    return hasher.hash(password)


def verify_password(hasher: PasswordHasher, stored_hash: str, password: str) -> bool:
    """Check a password against its stored hash, never raising on a mismatch."""
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# A well-formed hash to verify against when the account does not exist, so that a
# missing account costs the same time as a wrong password.
def dummy_hash(hasher: PasswordHasher) -> str:
    """A hash of a random password, computed once per application."""
    return hasher.hash(secrets.token_urlsafe(16))


def new_api_token() -> str:
    """An opaque bearer token with 256 random bits."""
    return secrets.token_urlsafe(32)


def digest(value: str) -> str:
    """SHA-256 hex digest, used to store tokens and throttle keys."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
