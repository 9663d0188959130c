"""Wire protocol: close codes and validation of client frames."""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple

import orjson


class CloseCode(IntEnum):
    """WebSocket close codes used by the signaling server."""

    NORMAL = 1000
    GOING_AWAY = 1001
    # Never sent, only recorded (RFC 6455 7.1.5): the peer's close frame had no code, or
    # the connection ended without a close frame.
    NO_STATUS = 1005
    ABNORMAL = 1006
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    # The server is restarting (RFC 6455 7.4.1, IANA registry): reconnect to the same URL.
    SERVICE_RESTART = 1012
    PROTOCOL = 4400
    TOKEN_INVALID = 4401
    TOKEN_ALGORITHM = 4402
    TOKEN_UNKNOWN_KEY = 4403
    TOKEN_EXPIRED = 4404
    TOKEN_NOT_YET_VALID = 4405
    NOT_LIVE = 4406
    JOIN_TIMEOUT = 4407
    ROOM_FULL = 4408
    REPLACED = 4409
    ROOM_CLOSED = 4410
    SILENT = 4411
    ORIGIN = 4412
    TOKEN_OUTDATED = 4413
    RATE_LIMITED = 4429


class FrameError(Exception):
    """A client frame that cannot be accepted; answered with an ``error`` frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


CLIENT_TYPES = frozenset(
    {"join", "sdp", "ice", "media", "connection", "link", "ping", "leave"}
)
CONNECTION_STATES = frozenset(
    {"new", "connecting", "connected", "disconnected", "failed", "closed"}
)
CANDIDATE_TYPES = frozenset({"relay", "direct"})
LINK_QUALITIES = frozenset({"good", "weak", "very-weak"})
LINK_PROBLEMS = frozenset({"interrupted", "no_connection", "unusable"})
#: Numbers a `connection.stats` summary may carry besides rtt_ms and packet_loss.
SUMMARY_NUMBERS = ("out_kbps", "in_kbps", "freezes", "concealment", "audio_only_s")
MAX_SDP_CHARS = 60_000


#: A frame the server sends: a JSON object whose ``type`` names it (see docs/signaling.md).
ServerFrame = dict[str, Any]


class Frame(NamedTuple):
    """A parsed client frame: its type and its (validated) fields."""

    type: str
    data: dict[str, Any]


def dumps(frame: ServerFrame) -> bytes:
    """Serialise a server frame to compact UTF-8 JSON, ready for a text frame."""
    return orjson.dumps(frame)


def error_frame(code: str, message: str) -> ServerFrame:
    """``error``: the client's frame was refused; the socket stays open."""
    return {"type": "error", "code": code, "message": message}


def peer_left_frame(peer_id: str, *, seq: int) -> ServerFrame:
    """``peer_left``: close your connection to that peer (``seq``: when, in the room's order)."""
    return {"type": "peer_left", "peer_id": peer_id, "seq": seq}


def peer_joined_frame(peer_id: str, role: str, *, reconnected: bool, seq: int) -> ServerFrame:
    """``peer_joined`` (the hub adds ``polite`` per recipient); ``seq``: its seat's join order."""
    return {
        "type": "peer_joined",
        "peer_id": peer_id,
        "role": role,
        "media": {"audio": True, "video": True},
        "reconnected": reconnected,
        "seq": seq,
    }


def peer_media_frame(peer_id: str, *, audio: bool, video: bool, seq: int) -> ServerFrame:
    """``peer_media``: a peer's mute state (``seq``: the join order of the seat it comes from)."""
    return {"type": "peer_media", "from": peer_id, "audio": audio, "video": video, "seq": seq}


def peer_link_frame(peer_id: str, link: dict[str, Any]) -> ServerFrame:
    """``peer_link``: what a peer's page makes of its link (quality, audio only, problem)."""
    return {"type": "peer_link", "from": peer_id, **link}


def _str(data: dict[str, Any], key: str, *, max_len: int = 200) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise FrameError("bad_field", f"field {key!r} must be a non-empty string")
    return value


def _to(value: Any) -> str:
    if type(value) is not str or not value or len(value) > 200:
        raise FrameError("bad_field", "field 'to' must be a non-empty string")
    return value


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise FrameError("bad_field", f"field {key!r} must be a boolean")
    return value


def _description(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise FrameError("bad_field", "field 'description' must be an object")
    kind, sdp = value.get("type"), value.get("sdp")
    if kind not in ("offer", "answer", "pranswer", "rollback"):
        raise FrameError(
            "bad_field", "description.type must be offer, answer, pranswer or rollback"
        )
    if not isinstance(sdp, str) or len(sdp) > MAX_SDP_CHARS:
        raise FrameError("bad_field", "description.sdp must be a string")
    return {"type": kind, "sdp": sdp}


def _candidate(value: Any) -> dict[str, Any] | None:
    # orjson only yields exact dict/list/str/int/float/bool/None, so `type(x) is int`
    # is the same check as `isinstance(x, int) and not isinstance(x, bool)`, only cheaper.
    if value is None:
        return None  # end-of-candidates
    if type(value) is not dict:
        raise FrameError("bad_field", "field 'candidate' must be an object or null")
    cand = value.get("candidate")
    mid = value.get("sdpMid")
    index = value.get("sdpMLineIndex")
    if type(cand) is not str or len(cand) > 2000:
        raise FrameError("bad_field", "candidate.candidate must be a string")
    if mid is not None and (type(mid) is not str or len(mid) > 64):
        raise FrameError("bad_field", "candidate.sdpMid must be a string or null")
    if index is not None and (type(index) is not int or index < 0):
        raise FrameError("bad_field", "candidate.sdpMLineIndex must be a non-negative integer")
    out: dict[str, Any] = {"candidate": cand, "sdpMid": mid, "sdpMLineIndex": index}
    frag = value.get("usernameFragment")
    if type(frag) is str and len(frag) <= 256:
        out["usernameFragment"] = frag
    return out


def _stats(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise FrameError("bad_field", "field 'stats' must be an object")
    out: dict[str, Any] = {}
    for key in ("rtt_ms", "packet_loss", *SUMMARY_NUMBERS):
        num = value.get(key)
        if num is not None:
            if not isinstance(num, int | float) or isinstance(num, bool) or num != num or num < 0:
                raise FrameError("bad_field", f"stats.{key} must be a non-negative number")
            out[key] = num
    kind = value.get("candidate_type")
    if kind is not None:
        if kind not in CANDIDATE_TYPES:
            raise FrameError("bad_field", "stats.candidate_type must be relay or direct")
        out["candidate_type"] = kind
    if "audio_only" in value:
        out["audio_only"] = _bool(value, "audio_only")
    quality = value.get("quality")
    if quality is not None:
        if quality not in LINK_QUALITIES:
            raise FrameError("bad_field", "stats.quality must be good, weak or very-weak")
        out["quality"] = quality
    return out


def _link(data: dict[str, Any]) -> dict[str, Any]:
    quality = data.get("quality")
    if quality not in LINK_QUALITIES:
        raise FrameError("bad_field", "field 'quality' must be good, weak or very-weak")
    problem = data.get("problem")
    if problem is not None and problem not in LINK_PROBLEMS:
        raise FrameError(
            "bad_field", "field 'problem' must be interrupted, no_connection, unusable or null"
        )
    return {
        "quality": quality,
        "audio_only": _bool(data, "audio_only"),
        "forced": _bool(data, "forced"),
        "problem": problem,
    }


def parse(text: str | bytes) -> Frame:
    """Parse and validate one client frame; unknown extra fields are dropped.

    orjson is stricter than the standard library: NaN/Infinity literals, lone surrogates
    and numbers that overflow a double are refused as ``bad_json``, which is also what
    guarantees that every accepted value can be encoded again for the other peers.
    """
    try:
        data = orjson.loads(text)
    except ValueError:
        raise FrameError("bad_json", "frame is not valid JSON") from None
    if type(data) is not dict:
        raise FrameError("bad_frame", "frame must be a JSON object")
    kind = data.get("type")
    # The relayed frames first: they are nearly all the traffic.
    if kind == "ice":
        if "candidate" not in data:
            raise FrameError("bad_field", "field 'candidate' is required (null ends candidates)")
        return Frame(kind, {"to": _to(data.get("to")), "candidate": _candidate(data["candidate"])})
    if kind == "sdp":
        return Frame(
            kind, {"to": _to(data.get("to")), "description": _description(data.get("description"))}
        )
    if type(kind) is not str or kind not in CLIENT_TYPES:
        raise FrameError("unknown_type", "unknown frame type")
    # Only known fields are kept, so client-supplied "from"/"role" never reach other peers.
    if kind == "join":
        token = data.get("token")
        if not isinstance(token, str) or not token or len(token) > 4096:
            raise FrameError("bad_field", "field 'token' must be a string")
        rollback = data.get("can_rollback", True)
        if not isinstance(rollback, bool):
            raise FrameError("bad_field", "field 'can_rollback' must be a boolean")
        return Frame(kind, {"token": token, "can_rollback": rollback})
    if kind == "media":
        return Frame(kind, {"audio": _bool(data, "audio"), "video": _bool(data, "video")})
    if kind == "link":
        return Frame(kind, _link(data))
    if kind == "connection":
        state = data.get("state")
        if state not in CONNECTION_STATES:
            raise FrameError("bad_field", "field 'state' must be an RTCPeerConnectionState")
        out: dict[str, Any] = {"state": state, "stats": _stats(data.get("stats"))}
        peer = data.get("peer")
        if isinstance(peer, str) and len(peer) <= 200:
            out["peer"] = peer
        return Frame(kind, out)
    return Frame(kind, {})
