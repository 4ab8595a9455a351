"""The broker's payloads: what nodes publish to each other, encoded as JSON (never pickle). No I/O.

Every payload on a channel is one JSON object with ``"v": 1`` and a type ``"t"``:

* ``{"v":1,"t":"b","n":NODE,"m":METHOD,"d":DATA}``: a broadcast from NODE;
* ``{"v":1,"t":"p","n":NODE,"q":SEQ}``: a node's probe of its own subscription;
* ``{"v":1,"t":"s","n":NODE,"s":SESSION,"m":[...]}``: one message of a call
  to (or the answer from) a session held by another node, in rpcengine's
  own list layout;
* ``{"v":1,"t":"g","n":NODE,"s":SESSION,"r":REASON}``: that session is gone.

:func:`decode_payload` checks size, JSON and shape and raises
:class:`BadPayload` for anything else, so a node drops garbage instead of
acting on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rpcengine.codec import Codec

__all__ = [
    "BROADCAST",
    "GONE",
    "MAX_PAYLOAD",
    "PROBE",
    "SESSION_MESSAGE",
    "BadPayload",
    "Payload",
    "broadcast_payload",
    "decode_payload",
    "gone_payload",
    "probe_payload",
    "session_payload",
]

VERSION = 1
BROADCAST = "b"
PROBE = "p"
SESSION_MESSAGE = "s"
GONE = "g"
#: Default bound on one payload's encoded size, bytes (a bigger one is refused when sent and dropped when received).
MAX_PAYLOAD = 1024 * 1024
_MAX_NAME = 256


class BadPayload(ValueError):
    """A payload that is not one of the broker's: too big, not JSON, or the wrong shape."""


@dataclass(frozen=True)
class Payload:
    """One decoded payload: its type, the node that sent it, and the type's own fields."""

    type: str
    node: str
    method: str = ""
    data: Any = None
    seq: int = 0
    session: str = ""
    message: Any = None
    reason: str = ""


def broadcast_payload(codec: Codec, node: str, method: str, data: Any) -> bytes:
    """Encode a broadcast; raises EncodeError if ``data`` cannot be encoded."""
    return codec.encode({"v": VERSION, "t": BROADCAST, "n": node, "m": method, "d": data})


def probe_payload(codec: Codec, node: str, seq: int) -> bytes:
    """Encode a probe of ``node``'s own subscription."""
    return codec.encode({"v": VERSION, "t": PROBE, "n": node, "q": seq})


def session_payload(codec: Codec, node: str, session: str, message: list[Any]) -> bytes:
    """Encode one message (as its list) to or from ``session``; raises EncodeError."""
    return codec.encode({"v": VERSION, "t": SESSION_MESSAGE, "n": node, "s": session, "m": message})


def gone_payload(codec: Codec, node: str, session: str, reason: str) -> bytes:
    """Encode the news that ``session`` (held by ``node``) is gone."""
    return codec.encode({"v": VERSION, "t": GONE, "n": node, "s": session, "r": reason})


def _name(value: Any, field: str) -> str:
    """Return ``value`` if it is a short non-empty string, else raise BadPayload naming ``field``."""
    if not isinstance(value, str) or not value or len(value) > _MAX_NAME:
        raise BadPayload(f"field {field!r} is not a name")
    return value


def decode_payload(codec: Codec, raw: bytes, max_size: int = MAX_PAYLOAD) -> Payload:
    """Decode and check one payload from a channel; raise BadPayload if it is not a valid one."""
    if not isinstance(raw, bytes):
        raise BadPayload("not bytes")
    if len(raw) > max_size:
        raise BadPayload(f"{len(raw)} bytes, over the {max_size}-byte bound")
    try:
        value = codec.decode(raw)
    except ValueError as exc:  # DecodeError, MessageTooLarge, bad UTF-8
        raise BadPayload(f"not JSON: {exc}") from None
    if not isinstance(value, dict) or value.get("v") != VERSION:
        raise BadPayload("not a version-1 payload object")
    kind = value.get("t")
    node = _name(value.get("n"), "n")
    if kind == BROADCAST:
        return Payload(BROADCAST, node, method=_name(value.get("m"), "m"), data=value.get("d"))
    if kind == PROBE:
        seq = value.get("q")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise BadPayload("probe without a sequence number")
        return Payload(PROBE, node, seq=seq)
    if kind == SESSION_MESSAGE:
        message = value.get("m")
        if not isinstance(message, list) or not message:
            raise BadPayload("session message without a message list")
        return Payload(SESSION_MESSAGE, node, session=_name(value.get("s"), "s"), message=message)
    if kind == GONE:
        reason = value.get("r")
        return Payload(GONE, node, session=_name(value.get("s"), "s"), reason=reason if isinstance(reason, str) else "")
    raise BadPayload(f"unknown payload type {kind!r}")
