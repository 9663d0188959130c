"""Problems the echo endpoint answers: a stable code, an HTTP status, English texts.

The host renders them in the caller's language (``SignalingHooks.problem_text``); these
English texts are the default when it does not.
"""

from __future__ import annotations

from typing import NamedTuple

from .protocol import CloseCode


class EchoProblem(NamedTuple):
    """One refusal of the echo endpoint."""

    status: int
    title: str
    detail: str


ECHO_PROBLEMS: dict[str, EchoProblem] = {
    "not_running": EchoProblem(
        503, "Busy", "Test calls are not available right now; try again in a minute."
    ),
    "bad_json": EchoProblem(400, "Bad request", "The request body is not valid JSON."),
    "bad_body": EchoProblem(
        400,
        "Bad request",
        'Send a JSON object holding the offer: its type "offer" and its sdp.',
    ),
    "token_required": EchoProblem(
        401,
        "Authentication required",
        "A test-call token is required, in the body or as 'Authorization: Bearer <token>'.",
    ),
    "token_invalid": EchoProblem(
        401, "Authentication required", "The test-call token is not valid; ask for a new one."
    ),
    "token_expired": EchoProblem(
        401, "Authentication required", "The test-call token has expired; ask for a new one."
    ),
    "token_not_yet_valid": EchoProblem(
        401,
        "Authentication required",
        "The test-call token is not valid yet; check the device's clock.",
    ),
    "offer_too_large": EchoProblem(413, "Request too large", "The offer is too large."),
    "busy": EchoProblem(503, "Busy", "Too many test calls are in progress; try again in a minute."),
    "already_running": EchoProblem(
        409,
        "Conflict",
        "A test call of yours is already running; end it before starting another.",
    ),
    "offer_refused": EchoProblem(
        400,
        "Bad request",
        "The offer could not be answered; check the camera and the microphone, then try again.",
    ),
}

#: The problem code of each token refusal (signature, algorithm and key are one to callers).
TOKEN_PROBLEMS: dict[int, str] = {
    CloseCode.TOKEN_EXPIRED: "token_expired",
    CloseCode.TOKEN_NOT_YET_VALID: "token_not_yet_valid",
}


def english_problem_text(code: str) -> tuple[str, str, str]:
    """Title, detail and language (``en``) of an echo problem, in English."""
    problem = ECHO_PROBLEMS.get(code, ECHO_PROBLEMS["bad_body"])
    return problem.title, problem.detail, "en"
