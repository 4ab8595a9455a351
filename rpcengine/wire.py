"""Every wire layout outside the message classes: frames in, bad-frame replies, heartbeats, goodbyes, broadcasts.

Transports never spell a message list themselves: they call these. A frame
is the encoded bytes of one JSON document (one line on TCP, one text
message on WebSocket).

* :func:`parse_frame`: bytes to a :class:`~rpcengine.messages.Message`, or a
  :class:`~rpcengine.errors.ProtocolError`;
* :func:`bad_frame_reply`: the Error that answers a bad frame whose request
  id could be read (a frame without one gets no reply: its connection closes);
* :func:`heartbeat_frame` (``[0, last_message_id]``),
  :func:`heartbeat_array` (``[[0, last_message_id]]``, a mushroom poll) and
  :func:`disconnect_frame` (``[-1]``);
* :func:`notification_tail` and :func:`notification_frame`: a broadcast's
  method and data encoded once, then spliced behind each session's own id;
* :func:`frame_array`: encoded frames joined into one JSON array (an HTTP
  batch answer, a poll answer).

Nothing here does I/O or yields.
"""

from __future__ import annotations

from typing import Any

from rpcengine.codec import Codec
from rpcengine.errors import InvalidMessage, ProtocolError
from rpcengine.features import NO_FEATURES
from rpcengine.messages import Disconnect, Error, Heartbeat, Message, Notification

__all__ = [
    "bad_frame_reply",
    "disconnect_frame",
    "error_data",
    "frame_array",
    "has_request_id",
    "heartbeat_array",
    "heartbeat_frame",
    "notification_frame",
    "notification_tail",
    "parse_frame",
]


def error_data(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    """Return the data of an Error message rpcengine generates itself.

    ``kind`` is a stable machine-readable name (``method_not_found``,
    ``internal_error``, ``unencodable_result``, ``invalid_message``, ...);
    ``message`` is for people.
    """
    return {"error": kind, "message": message, **extra}


def parse_frame(codec: Codec, frame: bytes, features: frozenset[str] = NO_FEATURES) -> Message:
    """Decode one frame into a message; raise a ProtocolError subclass if it is not one.

    ``features`` are those the connection negotiated (see :mod:`rpcengine.features`).
    """
    return Message.from_list(codec.decode(frame), features)


def bad_frame_reply(exc: ProtocolError, message_id: int) -> Error | None:
    """Return the Error (numbered ``message_id``) answering a bad frame whose request id is known, else None.

    Only an :class:`~rpcengine.errors.InvalidMessage` that recovered the id of
    a Request gets a reply; for anything else the caller closes the connection.
    """
    request_id = exc.request_id if isinstance(exc, InvalidMessage) else None
    if request_id is None:
        return None
    return Error(message_id, request_id, error_data("invalid_message", str(exc)))


def has_request_id(exc: ProtocolError) -> bool:
    """Whether a bad frame named a Request id, so that it can be answered instead of closing."""
    return isinstance(exc, InvalidMessage) and exc.request_id is not None


def heartbeat_frame(codec: Codec, last_message_id: int) -> bytes:
    """Return the encoded Heartbeat ``[0, last_message_id]``."""
    return codec.encode(Heartbeat(last_message_id).to_list())


def heartbeat_array(codec: Codec, last_message_id: int | None) -> bytes:
    """Return ``[[0, last_message_id]]``, one Heartbeat in a JSON array: the body of a mushroom poll.

    ``None`` (nothing received yet) gives mushroom's ``[[0, null]]``.
    """
    return codec.encode([[Heartbeat.code, last_message_id]])


def disconnect_frame(codec: Codec) -> bytes:
    """Return the encoded Disconnect ``[-1]``."""
    return codec.encode(Disconnect().to_list())


def notification_tail(codec: Codec, method: str, data: Any) -> bytes:
    """Encode a Notification's method and data once, for :func:`notification_frame` to number per peer.

    Raises :class:`~rpcengine.errors.EncodeError` if ``data`` cannot be encoded.
    """
    return codec.encode([method, data])[1:]


def notification_frame(message_id: int, tail: bytes) -> bytes:
    """Return the encoded ``[1, message_id, method, data]`` from a tail made by :func:`notification_tail`."""
    return b"[%d,%d,%s" % (Notification.code, message_id, tail)


def frame_array(frames: list[bytes]) -> bytes:
    """Return encoded ``frames`` (each one JSON document) as one encoded JSON array of them."""
    return b"[" + b",".join(frames) + b"]"
