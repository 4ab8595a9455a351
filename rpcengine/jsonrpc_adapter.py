"""JsonRpcAdapter: one connection's JSON-RPC 2.0 documents as native messages, and back; no I/O.

An Engine speaks rpcengine's own message lists. A transport whose peer
speaks JSON-RPC 2.0 puts one adapter between the two, so the same Engine,
dispatchers, middleware, limits and sessions serve it:

* :meth:`JsonRpcAdapter.receive` takes one inbound frame (a JSON-RPC
  object, or a batch) and returns the native messages to deliver and the
  answers to send at once (an invalid item, a parse error, a reserved
  method). Each call gets a native id of its own, numbered upwards as a
  native peer would: a request with an ``id`` becomes a
  :class:`~rpcengine.messages.Request`, one without a
  :class:`~rpcengine.messages.Notification`, whose data is the ``params``
  (absent: None). ``$/cancelRequest {"id"}`` and ``notifications/cancelled
  {"requestId"}`` naming a call still running become a native
  :class:`~rpcengine.messages.Cancel`. A response object answering a call
  this side made (the server calls the client) becomes a
  :class:`~rpcengine.messages.Response` or :class:`~rpcengine.messages.Error`
  for that call's id: this side's calls use the engine's own ids.
* :meth:`JsonRpcAdapter.encode` turns each outbound native message into
  the bytes to send, or None: an answer gets the peer's ``id`` back
  verbatim, its error data mapped by :func:`rpcengine.jsonrpc.error_from_data`;
  the answers to a batch's items are kept until the last one is in, then
  sent as one array; heartbeats and Disconnect are not sent (JSON-RPC has
  neither); a Cancel becomes ``$/cancelRequest``.

Inbound error objects become native error data that keeps the JSON-RPC
members and adds the native kind: ``{"error": kind, "message", "code",
"data"}`` (``-32601`` is ``method_not_found``, ``-32001``
``deadline_exceeded``...), so a caller catches
:class:`~rpcengine.errors.RequestException` as for any peer and a timeout
the peer reports raises :class:`~rpcengine.errors.RequestTimeout`.

Nothing here blocks or yields.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final

from rpcengine.codec import Codec
from rpcengine.errors import EncodeError
from rpcengine.jsonrpc import (
    CANCELLED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    NO_ID,
    OVERLOADED,
    PARSE_ERROR,
    SERVER_ERROR,
    TIMEOUT,
    TOO_LARGE,
    Call,
    Invalid,
    Reply,
    cancel_target,
    error_from_data,
    error_response,
    notification_object,
    parse_frame,
    request_object,
    result_response,
)
from rpcengine.messages import Cancel, Error, Message, Notification, Request, Response
from rpcengine.wire import error_data, frame_array

__all__ = ["JsonRpcAdapter", "Received", "native_error_data"]

log = logging.getLogger(__name__)

#: The native error kind of each JSON-RPC error code a peer may send.
_KIND_BY_CODE: Final = {
    PARSE_ERROR: "invalid_json",
    INVALID_REQUEST: "invalid_message",
    METHOD_NOT_FOUND: "method_not_found",
    INVALID_PARAMS: "invalid_params",
    INTERNAL_ERROR: "internal_error",
    CANCELLED: "cancelled",
    TIMEOUT: "deadline_exceeded",
    OVERLOADED: "overloaded",
    TOO_LARGE: "too_large",
    SERVER_ERROR: "server_error",
}


def native_error_data(error: dict[str, Any]) -> dict[str, Any]:
    """Return the native Error data for a peer's JSON-RPC error object (a dict with ``code`` and ``message``).

    ``{"error": kind, "message": message, "code": code}`` plus the error's
    ``data`` when it has one; ``kind`` is the native name of a known code,
    else ``jsonrpc_error``. :func:`rpcengine.jsonrpc.error_from_data` turns
    it back into the same error object.
    """
    native = error_data(_KIND_BY_CODE.get(error["code"], "jsonrpc_error"), error["message"], code=error["code"])
    if "data" in error:
        native["data"] = error["data"]
    return native


@dataclass
class Received:
    """What one inbound frame came to: ``messages`` for the engine, ``replies`` to send now, in that order."""

    messages: list[Message] = field(default_factory=list)
    replies: list[bytes] = field(default_factory=list)


class _Batch:
    """The answers of one batch: one slot per item that is answered, filled as the answers come."""

    __slots__ = ("slots", "waiting")

    def __init__(self) -> None:
        self.slots: list[bytes | None] = []
        #: Slots not yet filled.
        self.waiting = 0


class _Slot:
    """Where the answer to one inbound request goes: the peer's ``id``, and its batch and place if it has one."""

    __slots__ = ("batch", "id", "index")

    def __init__(self, ident: Any, batch: _Batch | None, index: int) -> None:
        self.id = ident
        self.batch = batch
        self.index = index


class JsonRpcAdapter:
    """The JSON-RPC 2.0 side of one connection (see the module docstring).

    ``codec`` decodes and encodes frames (its size limit applies: a frame
    over it is answered TOO_LARGE). Does not block.
    """

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self._last_id = 0
        # Native id of an inbound request -> where its answer goes.
        self._slots: dict[int, _Slot] = {}
        # The peer's id of a request still running -> its native id (for cancels). Hashable ids only.
        self._by_peer_id: dict[Any, int] = {}

    @property
    def awaiting(self) -> int:
        """How many inbound requests are not answered yet."""
        return len(self._slots)

    def _next_id(self) -> int:
        """Return the next native id for an inbound message."""
        self._last_id += 1
        return self._last_id

    # -- inbound ------------------------------------------------------------

    def receive(self, frame: bytes) -> Received:
        """Return the native messages ``frame`` holds and the answers that need no handler."""
        document = parse_frame(self.codec, frame)
        received = Received()
        if document.error is not None:
            log.warning("JSON-RPC document refused: %s", document.error["message"])
            received.replies.append(self.codec.encode(error_response(None, document.error)))
            return received
        batch = _Batch() if document.is_batch else None
        for item in document.items:
            if isinstance(item, Call):
                self._call(item, batch, received)
            elif isinstance(item, Invalid):
                log.warning("invalid JSON-RPC request: %s", item.error["message"])
                self._answer_now(self.codec.encode(item.response()), batch, received)
            else:
                self._reply(item, received)
        if batch is not None and batch.slots and batch.waiting == 0:
            received.replies.append(_batch_frame(batch))
        return received

    def _call(self, call: Call, batch: _Batch | None, received: Received) -> None:
        """Turn one call into a native message (or a Cancel, or an answer at once)."""
        if call.is_notification:
            target = cancel_target(call)
            if target is not NO_ID:
                native = self._by_peer_id.get(target)
                if native is not None:
                    received.messages.append(Cancel(self._next_id(), native))
                else:
                    log.debug("cancel for JSON-RPC id %r, which is not running, ignored", target)
                return
            if call.method.startswith("rpc."):
                log.warning("notification for reserved method %r dropped", call.method)
                return
            received.messages.append(Notification(self._next_id(), call.method, call.data))
            return
        if call.method.startswith("rpc."):
            data = error_data("method_not_found", f"method not found: {call.method}", method=call.method)
            self._answer_now(self.codec.encode(error_response(call.id, error_from_data(data))), batch, received)
            return
        native = self._next_id()
        index = 0
        if batch is not None:
            index = len(batch.slots)
            batch.slots.append(None)
            batch.waiting += 1
        self._slots[native] = _Slot(call.id, batch, index)
        if type(call.id) is not float or call.id == call.id:  # (NaN cannot name a request to cancel)
            self._by_peer_id[call.id] = native
        received.messages.append(Request(native, call.method, call.data))

    def _answer_now(self, payload: bytes, batch: _Batch | None, received: Received) -> None:
        """Send ``payload`` at once, or keep it in its batch."""
        if batch is None:
            received.replies.append(payload)
        else:
            batch.slots.append(payload)

    def _reply(self, reply: Reply, received: Received) -> None:
        """Turn the answer to one of this side's calls into a native Response or Error."""
        if type(reply.id) is not int:
            log.warning("JSON-RPC response with id %r answers no call made here: dropped", reply.id)
            return
        if reply.error is None:
            received.messages.append(Response(self._next_id(), reply.id, reply.result))
        else:
            received.messages.append(Error(self._next_id(), reply.id, native_error_data(reply.error)))

    # -- outbound -----------------------------------------------------------

    def encode(self, message: Message) -> bytes | None:
        """Return the bytes that carry ``message`` to the peer, or None when nothing is sent (yet).

        Raises :class:`~rpcengine.errors.EncodeError` if it cannot be
        encoded; the answer's place is then kept for the Error that follows.
        """
        kind = type(message)
        if kind is Response or kind is Error:
            return self._answer(message)  # type: ignore[arg-type]
        if kind is Request:
            return self.codec.encode(request_object(message.message_id, message.method, message.data))  # type: ignore[attr-defined]
        if kind is Notification:
            return self.codec.encode(notification_object(message.method, message.data))  # type: ignore[attr-defined]
        if kind is Cancel:
            return self.codec.encode(notification_object("$/cancelRequest", {"id": message.request_message_id}))  # type: ignore[attr-defined]
        return None  # Heartbeat, Disconnect: JSON-RPC has neither

    def notification(self, method: str, data: Any) -> bytes:
        """Return the encoded notification object for a broadcast; raises EncodeError."""
        return self.codec.encode(notification_object(method, data))

    def _answer(self, message: Response | Error) -> bytes | None:
        """Encode the answer to an inbound request; keep it in its batch until the batch is complete."""
        slot = self._slots.get(message.request_message_id)
        if slot is None:
            log.debug("answer to %d dropped: no JSON-RPC request waits for it", message.request_message_id)
            return None
        if type(message) is Response:
            payload = self.codec.encode(result_response(slot.id, message.data))  # EncodeError: kept for the Error
        else:
            payload = self.codec.encode(error_response(slot.id, error_from_data(message.data)))
        self._forget(message.request_message_id, slot)
        batch = slot.batch
        if batch is None:
            return payload
        batch.slots[slot.index] = payload
        batch.waiting -= 1
        return _batch_frame(batch) if batch.waiting == 0 else None

    def _forget(self, native: int, slot: _Slot) -> None:
        """The request ``native`` is answered."""
        del self._slots[native]
        ident = slot.id
        if (type(ident) is not float or ident == ident) and self._by_peer_id.get(ident) == native:
            del self._by_peer_id[ident]

    def expire(self, reason: str) -> list[bytes]:
        """Answer every request still waiting with a TIMEOUT error for ``reason``; return what to send.

        For a transport that cannot wait any longer (an HTTP exchange whose
        time is up): answers that come later are dropped.
        """
        payloads: list[bytes] = []
        data = error_data("timeout", reason)
        for native, slot in list(self._slots.items()):
            try:
                payload = self._answer(Error(0, native, data))
            except EncodeError:  # (cannot happen: the id came from JSON)
                log.exception("timeout answer for %r cannot be encoded", slot.id)
                continue
            if payload is not None:
                payloads.append(payload)
        return payloads


def _batch_frame(batch: _Batch) -> bytes:
    """Return a complete batch's answers as one JSON array."""
    return frame_array([payload for payload in batch.slots if payload is not None])
