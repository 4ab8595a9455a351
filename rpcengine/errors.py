"""Exceptions raised by rpcengine.

Every exception the library raises derives from :class:`RpcError`::

    RpcError
    ├── MethodNotFound            no handler for a Request or Notification
    ├── RequestException          the peer answered a Request with an Error message
    ├── RequestTimeout            no answer in time (also a builtin TimeoutError)
    ├── RequestCancelled          this side cancelled the call (Call.cancel, a cancelled future or task)
    ├── ConnectionLost            the transport closed before the answer came
    │                             (also a builtin ConnectionError)
    ├── TooManyPendingRequests    the engine's bound on pending requests is reached
    ├── WrongThread               a hub-only method called from another OS thread
    ├── OutboxFull                too many sent messages wait for the peer's acknowledgement
    ├── EncodeError               a value cannot be encoded as JSON (also a ValueError)
    └── ProtocolError             the peer broke the protocol (also a ValueError)
        ├── DecodeError           bytes that are not acceptable JSON
        ├── MessageTooLarge       a frame or document over the configured maximum
        ├── MessageRefused        a frame the transport will not take (binary, not UTF-8, too
        │                         many fragments); carries the close code to end the connection with
        ├── InvalidMessage        JSON that is not one of the six message lists
        └── HandshakeError        a handshake object that cannot be accepted

:class:`HandlerInterrupted` is the one exception outside that tree: it is
raised *into* a handler whose caller cancelled or whose deadline passed,
and derives from ``BaseException`` so that ``except Exception`` in a
handler does not stop it.

:class:`ProtocolError` and its subclasses describe *remote* mistakes: data
received from a peer. :class:`EncodeError` and :class:`TooManyPendingRequests`
describe *local* ones: a value this side tried to send.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConnectionLost",
    "DecodeError",
    "EncodeError",
    "HandlerInterrupted",
    "HandshakeError",
    "InvalidMessage",
    "MessageRefused",
    "MessageTooLarge",
    "MethodNotFound",
    "OutboxFull",
    "ProtocolError",
    "RequestCancelled",
    "RequestException",
    "RequestTimeout",
    "RpcError",
    "TooManyPendingRequests",
    "WrongThread",
]


class RpcError(Exception):
    """Base class for all exceptions raised by the Engine and its transports."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class MethodNotFound(RpcError):
    """No handler exists for the method named in a Request or Notification.

    Raised by dispatchers on either side; the Engine turns it into an Error
    reply whose data carries the method name.
    """

    def __init__(self, method_name: str) -> None:
        super().__init__(f"method not found: {method_name!r}")
        self.method_name = method_name


class RequestException(RpcError):
    """A Request was answered with an Error message.

    A handler may raise it too: its ``data`` then becomes the data of the
    Error reply, unchanged.
    """

    def __init__(self, data: Any) -> None:
        super().__init__(_describe_error_data(data))
        self.data = data


class RequestTimeout(RpcError, TimeoutError):
    """A Request was not answered within its timeout."""


class RequestCancelled(RpcError):
    """The call was cancelled on this side before its answer came.

    Raised by :meth:`~rpcengine.calls.Call.get` after
    :meth:`~rpcengine.calls.Call.cancel`, and set on a thread's future or an
    asyncio task that was cancelled. A late answer is dropped.
    """


class WrongThread(RpcError):
    """A method that must run on the engine's own hub thread was called from another OS thread.

    Use :meth:`~rpcengine.engine.Engine.submit` (or ``submit_async``,
    ``notify_threadsafe``) from other threads.
    """


class HandlerInterrupted(BaseException):
    """Raised inside a running handler whose caller cancelled (``reason`` ``"cancelled"``) or whose
    deadline passed (``"deadline_exceeded"``).

    A ``BaseException``, as ``GreenletExit`` is: ``except Exception`` in a
    handler does not catch it. A handler may clean up in ``finally``; its
    caller gets one Error ``{"error": reason, ...}`` whatever it returns.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectionLost(RpcError, ConnectionError):
    """The transport closed or was lost before the Request was answered.

    Every request pending on an engine whose transport closes fails with this
    error at once; so does any later attempt to send on it.
    """


class TooManyPendingRequests(RpcError):
    """The engine already holds its maximum number of pending requests."""


class OutboxFull(RpcError):
    """Too many sent messages are waiting for the peer's acknowledgement."""


class EncodeError(RpcError, ValueError):
    """A value cannot be encoded as JSON (a set, bytes, NaN, a tuple key, ...)."""


class ProtocolError(RpcError, ValueError):
    """Data received from a peer breaks the protocol."""


class DecodeError(ProtocolError):
    """Bytes that are not acceptable JSON: invalid UTF-8 or syntax, NaN, too deep."""


class MessageTooLarge(ProtocolError):
    """A frame or JSON document is larger than the configured maximum."""


class MessageRefused(ProtocolError):
    """A frame the transport will not take; ``code`` is the close code to fail the connection with.

    Raised by the WebSocket transport for a binary frame (1003), text that is
    not UTF-8 (1007), a message in too many fragments (1009) or a stray
    continuation frame (1002).
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class InvalidMessage(ProtocolError):
    """A decoded JSON value is not one of the six message lists.

    ``request_id`` holds the id of the offending Request when it could be
    recovered, so that an Error reply can name it; otherwise ``None``.
    """

    def __init__(self, message: str = "", request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class HandshakeError(ProtocolError):
    """A handshake object that is malformed or names an unsupported version."""


def _describe_error_data(data: Any) -> str:
    """Return a short human-readable summary of Error message data."""
    if isinstance(data, dict):
        message = data.get("message")
        if isinstance(message, str):
            return message
    text = repr(data)
    return text if len(text) <= 200 else text[:197] + "..."
