"""The optional session handshake: a JSON object as the first frame each way.

Messages are JSON lists; a handshake is a JSON object, so the two never mix
up. A client that wants heartbeats and resume sends, as its first frame::

    {"rpcengine": 1, "session": null, "ack": 0, "max_unacked": 10000}

(``session`` names a session to resume, ``ack`` is the last message id it
received in that session; a resume also carries ``"secret"``). The server
answers::

    {"rpcengine": 1, "session": "<id>", "secret": "<secret>", "resumed": false, "ack": 0,
     "heartbeat": 5.0, "timeout": 15.0, "max_unacked": 10000}

``secret`` is given once, with a new session, and never again: a client
resumes only by presenting it with the session id (compared in constant
time), so knowing an id (from a log, say) is not enough to take a session
over. A resume with a wrong or missing secret gets a fresh session
(``resumed: false``), never someone else's.

``resumed`` tells whether the named session was found; if not, the server
started a new one and the client must treat its pending requests as lost.
``ack`` is the last message id the server received from the client in that
session. ``heartbeat`` is how often the server sends heartbeats and
``timeout`` how long it waits for a frame before declaring the client dead;
a client sends its own heartbeats at least every ``heartbeat`` seconds.
``features`` (optional both ways) lists the protocol features the
sender takes (:mod:`rpcengine.features`: ``"cancel"``, ``"deadline"``); the
server answers with those of the client's it takes too, and the session
uses exactly those. Without the key, a session has none.
``max_unacked`` (optional both ways) is how many sent messages the sender
keeps waiting for acknowledgement before it stops: the receiver then
acknowledges at least every quarter of that many messages, whatever its own
setting. A refusal is ``{"rpcengine": 1, "error": "<why>"}`` followed by a
close. A client whose first frame is a list skips all this: it gets a plain
session with no resume and no heartbeat timeout, as ``nc`` users expect.
"""

from __future__ import annotations

from typing import Any

from rpcengine.errors import HandshakeError
from rpcengine.features import ALL_FEATURES, NO_FEATURES, negotiate
from rpcengine.messages import MAX_MESSAGE_ID

__all__ = [
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "ClientHello",
    "ServerHello",
    "client_hello",
    "is_handshake_frame",
    "parse_client_hello",
    "parse_server_hello",
    "refusal",
    "server_hello",
]

#: The handshake and message protocol version this library speaks.
PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
_MAX_SESSION_ID = 128
_CLIENT_KEYS = frozenset({"rpcengine", "session", "ack", "max_unacked", "secret", "features"})


def is_handshake_frame(frame: bytes) -> bool:
    """Return whether ``frame`` holds a JSON object (a handshake) rather than a message list."""
    return frame.lstrip()[:1] == b"{"


class ClientHello:
    """A parsed client handshake."""

    __slots__ = ("ack", "extra", "features", "max_unacked", "secret", "session", "version")

    def __init__(
        self,
        version: int,
        session: str | None,
        ack: int,
        extra: dict[str, Any],
        max_unacked: int | None = None,
        secret: str | None = None,
        features: frozenset[str] = NO_FEATURES,
    ) -> None:
        self.version = version
        self.session = session
        #: The resume secret the server gave with the session (None for a new session).
        self.secret = secret
        self.ack = ack
        #: Every other key the client sent (for example credentials for an authenticate hook).
        self.extra = extra
        #: The client's outbox bound, if it said: acknowledge its messages often enough for it.
        self.max_unacked = max_unacked
        #: The features the client announced that this library knows.
        self.features = features


class ServerHello:
    """A parsed server handshake answer."""

    __slots__ = ("ack", "features", "heartbeat", "max_unacked", "resumed", "secret", "session", "timeout", "version")

    def __init__(
        self,
        version: int,
        session: str,
        resumed: bool,
        ack: int,
        heartbeat: float | None,
        timeout: float | None,
        max_unacked: int | None = None,
        secret: str | None = None,
        features: frozenset[str] = NO_FEATURES,
    ) -> None:
        self.version = version
        self.session = session
        #: The features the session uses (those the server took of the client's).
        self.features = features
        #: The secret to present with ``session`` when resuming (sent with a new session only).
        self.secret = secret
        self.resumed = resumed
        self.ack = ack
        self.heartbeat = heartbeat
        self.timeout = timeout
        #: The server's outbox bound, if it said: acknowledge its messages often enough for it.
        self.max_unacked = max_unacked


def client_hello(
    session: str | None,
    ack: int,
    max_unacked: int | None = None,
    secret: str | None = None,
    *,
    features: frozenset[str] = NO_FEATURES,
    **extra: Any,
) -> dict[str, Any]:
    """Return the client's handshake object (``secret`` only with a session to resume, ``features`` if any)."""
    hello = {"rpcengine": PROTOCOL_VERSION, "session": session, "ack": ack, **extra}
    if session is not None and secret is not None:
        hello["secret"] = secret
    if features:
        hello["features"] = sorted(features)
    if max_unacked is not None:
        hello["max_unacked"] = max_unacked
    return hello


def server_hello(
    session: str,
    resumed: bool,
    ack: int,
    heartbeat: float | None,
    timeout: float | None,
    max_unacked: int | None = None,
    secret: str | None = None,
    features: frozenset[str] = NO_FEATURES,
) -> dict[str, Any]:
    """Return the server's handshake answer (``secret`` only with a new session, ``features`` if any)."""
    hello: dict[str, Any] = {
        "rpcengine": PROTOCOL_VERSION,
        "session": session,
        "resumed": resumed,
        "ack": ack,
        "heartbeat": heartbeat,
        "timeout": timeout,
    }
    if max_unacked is not None:
        hello["max_unacked"] = max_unacked
    if secret is not None:
        hello["secret"] = secret
    if features:
        hello["features"] = sorted(features)
    return hello


def refusal(reason: str) -> dict[str, Any]:
    """Return the server's answer to a handshake it refuses."""
    return {"rpcengine": PROTOCOL_VERSION, "error": reason}


def _version(value: dict[str, Any]) -> int:
    """Return the supported version named in a handshake object, else raise HandshakeError."""
    version = value.get("rpcengine")
    if type(version) is not int:
        raise HandshakeError("handshake lacks an integer 'rpcengine' version")
    if version not in SUPPORTED_VERSIONS:
        raise HandshakeError(f"unsupported protocol version {version}")
    return version


def _max_unacked(value: dict[str, Any]) -> int | None:
    """Return the handshake's optional ``max_unacked`` field, validated."""
    bound = value.get("max_unacked")
    if bound is not None and (type(bound) is not int or bound < 1):
        raise HandshakeError("handshake 'max_unacked' must be a positive integer")
    return bound


def _ack(value: dict[str, Any]) -> int:
    """Return the handshake's ``ack`` field, validated."""
    ack = value.get("ack", 0)
    if type(ack) is not int or not 0 <= ack <= MAX_MESSAGE_ID:
        raise HandshakeError("handshake 'ack' must be a message id")
    return ack


def parse_client_hello(value: Any) -> ClientHello:
    """Validate a decoded client handshake; raise HandshakeError if it is unacceptable."""
    if type(value) is not dict:
        raise HandshakeError("a handshake is a JSON object")
    version = _version(value)
    session = value.get("session")
    if session is not None and (type(session) is not str or not 0 < len(session) <= _MAX_SESSION_ID):
        raise HandshakeError("handshake 'session' must be null or a session id")
    secret = value.get("secret")
    if secret is not None and (type(secret) is not str or not 0 < len(secret) <= _MAX_SESSION_ID):
        raise HandshakeError("handshake 'secret' must be the string the server gave")
    extra = {k: v for k, v in value.items() if k not in _CLIENT_KEYS}
    features = negotiate(value.get("features"), ALL_FEATURES)
    return ClientHello(version, session, _ack(value), extra, _max_unacked(value), secret, features)


def parse_server_hello(value: Any) -> ServerHello:
    """Validate a decoded server answer; raise HandshakeError if it is a refusal or malformed."""
    if type(value) is not dict:
        raise HandshakeError("the server's handshake answer is not a JSON object")
    if "error" in value:
        raise HandshakeError(f"server refused the handshake: {value['error']}")
    version = _version(value)
    session = value.get("session")
    if type(session) is not str or not session:
        raise HandshakeError("the server's handshake answer lacks a session id")
    heartbeat, timeout = value.get("heartbeat"), value.get("timeout")
    for number in (heartbeat, timeout):
        if number is not None and (type(number) not in (int, float) or number <= 0):
            raise HandshakeError("the server's heartbeat settings are invalid")
    resumed = bool(value.get("resumed"))
    secret = value.get("secret")
    if secret is not None and type(secret) is not str:
        raise HandshakeError("the server's resume secret is not a string")
    features = negotiate(value.get("features"), ALL_FEATURES)
    return ServerHello(
        version, session, resumed, _ack(value), heartbeat, timeout, _max_unacked(value), secret, features
    )
