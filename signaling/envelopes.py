"""Envelopes: a server frame and whom it is for, as handed between the handlers, the hub
and the brokers (and, encoded as JSON, between instances)."""

from __future__ import annotations

from typing import Required, TypedDict

from .protocol import CloseCode, ServerFrame


class Envelope(TypedDict, total=False):
    """Where a frame goes on this instance; which fields are set says how it is addressed."""

    room: Required[str]
    #: The frame to send (encoded once for every recipient, unless ``polite_for`` is set).
    frame: ServerFrame
    #: The frame already encoded: a relay from another instance, written out as is.
    text: str
    #: One peer of the room.
    to: str
    #: One connection (a replaced socket), whatever peer it serves.
    conn: str
    #: Every peer of the room but this one.
    exclude: str
    #: Where the event about ``exclude`` stands in the room's order (its frame's ``seq``):
    #: the join of a ``peer_joined``, the leave of a ``peer_left``, the seat a
    #: ``peer_media`` comes from. Each socket drops the events it already knows of.
    seq: int
    #: Per recipient, whether it is polite toward the newcomer (``peer_joined.polite``).
    polite_for: dict[str, bool]
    #: Close the recipients' sockets after the frame: [code, reason] (a JSON array).
    close: tuple[int, str]


def to_peer(room: str, peer_id: str, frame: ServerFrame) -> Envelope:
    """A frame for one peer of the room."""
    return {"room": room, "to": peer_id, "frame": frame}


def encoded_to_peer(room: str, peer_id: str, text: str) -> Envelope:
    """An already encoded frame for one peer (it crosses Redis without being parsed again)."""
    return {"room": room, "to": peer_id, "text": text}


def to_others(
    room: str,
    exclude: str,
    frame: ServerFrame,
    *,
    seq: int | None = None,
    polite_for: dict[str, bool] | None = None,
) -> Envelope:
    """A frame for every peer of the room but ``exclude`` (the sender)."""
    envelope: Envelope = {"room": room, "exclude": exclude, "frame": frame}
    if seq is not None:
        envelope["seq"] = seq
    if polite_for is not None:
        envelope["polite_for"] = polite_for
    return envelope


def kick(room: str, conn_id: str, code: int, reason: str) -> Envelope:
    """Close one connection of the room (no frame)."""
    return {"room": room, "conn": conn_id, "close": (int(code), reason)}


def close_room(room: str, reason: str) -> Envelope:
    """A ``room_closed`` frame then close 4410, for every socket of the room."""
    return {
        "room": room,
        "frame": {"type": "room_closed", "reason": reason},
        "close": (int(CloseCode.ROOM_CLOSED), "room closed"),
    }
