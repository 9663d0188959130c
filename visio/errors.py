"""Domain errors; one middleware maps them to RFC 9457 problem+json responses.

Every error carries a ``Message`` (``visio.domain.messages``), rendered in the caller's
language by ``visio.api.problems``; ``title`` is a catalogue id too. ``code`` and the
``extra`` fields stay machine-readable and stable across languages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from visio.domain.messages import N_, Message


class VisioError(Exception):
    """Base of every error a person should read; ``detail`` is a full sentence."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = N_("Bad request")
    slug: ClassVar[str] = "bad-request"
    #: Seconds after which a retry may succeed (sent as Retry-After), if that is known.
    retry_after: int | None = None

    def __init__(self, detail: Message, *, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail.english())
        self.detail = detail
        self.extra: dict[str, Any] = dict(extra or {})


class InvalidInput(VisioError):
    status = 400
    title = N_("Invalid input")
    slug = "invalid-input"


class NotAuthenticated(VisioError):
    status = 401
    title = N_("Authentication required")
    slug = "not-authenticated"


class Forbidden(VisioError):
    status = 403
    title = N_("Forbidden")
    slug = "forbidden"


class NotFound(VisioError):
    status = 404
    title = N_("Not found")
    slug = "not-found"


class Conflict(VisioError):
    status = 409
    title = N_("Conflict")
    slug = "conflict"


class SlotTaken(Conflict):
    title = N_("Slot no longer free")
    slug = "slot-taken"


class RequestInFlight(Conflict):
    title = N_("Request already in progress")
    slug = "request-in-flight"


class CallNotOpenYet(Conflict):
    """The call's window has not opened: ``retry_after`` says in how many seconds."""

    title = N_("The call is not open yet")
    slug = "call-not-open-yet"

    def __init__(self, detail: Message, *, retry_after: int,
                 extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail, extra=extra)
        self.retry_after = retry_after


class PreconditionFailed(VisioError):
    status = 412
    title = N_("Changed in the meantime")
    slug = "precondition-failed"


class Unprocessable(VisioError):
    status = 422
    title = N_("Cannot be done")
    slug = "unprocessable"


class NotBookable(Unprocessable):
    title = N_("Not a bookable time")
    slug = "not-bookable"


class IdempotencyKeyReused(Unprocessable):
    title = N_("Idempotency-Key reused with another request")
    slug = "idempotency-key-reused"


class TooManyAttempts(VisioError):
    status = 429
    title = N_("Too many attempts")
    slug = "too-many-attempts"

    def __init__(self, detail: Message, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class TooManyRequests(TooManyAttempts):
    title = N_("Too many requests")
    slug = "too-many-requests"


class DatabaseBusy(VisioError):
    status = 503
    title = N_("Busy")
    slug = "busy"
    retry_after = 1


class DatabaseUnavailable(VisioError):
    """The database cannot be reached (down, restarting, a network cut): retry later."""

    status = 503
    title = N_("Service unavailable")
    slug = "unavailable"
    retry_after = 5
