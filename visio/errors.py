"""Domain errors; one middleware maps them to RFC 9457 problem+json responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class VisioError(Exception):
    """Base of every error a person should read; ``detail`` is a full sentence."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"
    slug: ClassVar[str] = "bad-request"
    #: Seconds after which a retry may succeed (sent as Retry-After), if that is known.
    retry_after: int | None = None

    def __init__(self, detail: str, *, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra: dict[str, Any] = dict(extra or {})


class InvalidInput(VisioError):
    status = 400
    title = "Invalid input"
    slug = "invalid-input"


class NotAuthenticated(VisioError):
    status = 401
    title = "Authentication required"
    slug = "not-authenticated"


class Forbidden(VisioError):
    status = 403
    title = "Forbidden"
    slug = "forbidden"


class NotFound(VisioError):
    status = 404
    title = "Not found"
    slug = "not-found"


class Conflict(VisioError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class SlotTaken(Conflict):
    title = "Slot no longer free"
    slug = "slot-taken"


class RequestInFlight(Conflict):
    title = "Request already in progress"
    slug = "request-in-flight"


class Unprocessable(VisioError):
    status = 422
    title = "Cannot be done"
    slug = "unprocessable"


class NotBookable(Unprocessable):
    title = "Not a bookable time"
    slug = "not-bookable"


class IdempotencyKeyReused(Unprocessable):
    title = "Idempotency-Key reused with another request"
    slug = "idempotency-key-reused"


class TooManyAttempts(VisioError):
    status = 429
    title = "Too many attempts"
    slug = "too-many-attempts"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class DatabaseBusy(VisioError):
    status = 503
    title = "Busy"
    slug = "busy"
    retry_after = 1
