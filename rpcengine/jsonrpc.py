"""JSON-RPC 2.0 objects onto rpcengine's calls and answers, with no I/O.

A decoded document (an object, or a batch: an array of them) becomes a
:class:`Document` of items (:func:`parse_document`); each item is a
:class:`Call` (a request, or a notification when it has no ``id``), an
:class:`Invalid` item that is answered with an error at once, or a
:class:`Reply` (the answer to a call this side sent, over a connection
where the server calls the client too). A call's ``params`` is the data of
the native Request or Notification (absent: ``None``); its ``id`` is kept
verbatim and echoed in the answer.

Native error data (:func:`~rpcengine.wire.error_data`, a
:class:`~rpcengine.errors.RequestException`'s data) and local exceptions
become JSON-RPC error objects by one table (:func:`error_from_data`,
:func:`error_from_exception`):

======  ====================  ==========================================================
code    constant              native error data kind, or local exception
======  ====================  ==========================================================
-32600  ``INVALID_REQUEST``   ``invalid_message``, an item that is not a Request object
-32601  ``METHOD_NOT_FOUND``  ``method_not_found``, :class:`MethodNotFound`
-32602  ``INVALID_PARAMS``    ``invalid_params`` (a dispatcher's signature mismatch)
-32603  ``INTERNAL_ERROR``    ``internal_error``, ``unencodable_result``,
                              :class:`EncodeError`, any unexpected exception
-32700  ``PARSE_ERROR``       ``invalid_json``, :class:`DecodeError` (``id`` null)
-32800  ``CANCELLED``         ``cancelled``, :class:`RequestCancelled`
-32001  ``TIMEOUT``           ``deadline_exceeded``, ``timeout``, :class:`RequestTimeout`
-32002  ``OVERLOADED``        ``overloaded``, ``unavailable``,
                              :class:`TooManyPendingRequests`, :class:`OutboxFull`
-32003  ``TOO_LARGE``         ``too_large``, :class:`MessageTooLarge`
-32000  ``SERVER_ERROR``      any other error data (a handler's RequestException)
======  ====================  ==========================================================

The error's ``message`` is the data's ``message`` and its ``data`` is the
original error data; data that already holds an integer ``code`` and a
string ``message`` is the error object itself (its ``data`` member kept,
other members dropped). A local exception's text never reaches the peer:
its ``message`` is fixed, and no traceback is ever put in ``data``.

:func:`answer_document` puts the answers together as the specification's
section 6 says: ``None`` when there is nothing to send (only
notifications), one object for a single call, an array for a batch.
:func:`respond` does it all for a synchronous ``call(method, data)``.
Nothing here blocks, except what ``call`` itself does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from rpcengine.codec import Codec
from rpcengine.errors import (
    DecodeError,
    EncodeError,
    InvalidMessage,
    MessageTooLarge,
    MethodNotFound,
    OutboxFull,
    RequestCancelled,
    RequestException,
    RequestTimeout,
    TooManyPendingRequests,
)
from rpcengine.wire import error_data

__all__ = [
    "CANCELLED",
    "CANCEL_METHODS",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MAX_BATCH",
    "METHOD_NOT_FOUND",
    "NO_ID",
    "OVERLOADED",
    "PARSE_ERROR",
    "SERVER_ERROR",
    "TIMEOUT",
    "TOO_LARGE",
    "VERSION",
    "Call",
    "Document",
    "Invalid",
    "Item",
    "NoId",
    "Reply",
    "answer_document",
    "cancel_target",
    "error_from_data",
    "error_from_exception",
    "error_object",
    "error_response",
    "is_jsonrpc_document",
    "is_jsonrpc_frame",
    "notification_object",
    "parse_document",
    "parse_frame",
    "parse_item",
    "request_object",
    "respond",
    "respond_frame",
    "result_response",
]

log = logging.getLogger(__name__)

#: The value of every object's ``jsonrpc`` member.
VERSION: Final = "2.0"

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
#: Any other error data (a handler's own RequestException).
SERVER_ERROR: Final = -32000
#: The call's timeout or deadline passed.
TIMEOUT: Final = -32001
#: Too many pending requests, or an outbox full.
OVERLOADED: Final = -32002
#: A message or document over the size limit.
TOO_LARGE: Final = -32003
#: The caller cancelled the request (LSP's ``RequestCancelled``).
CANCELLED: Final = -32800

#: Most items a batch may hold; a longer one is answered with one INVALID_REQUEST error.
MAX_BATCH: Final = 1000

#: The notifications that cancel a request: their method and the params member naming its id.
CANCEL_METHODS: Final = {"$/cancelRequest": "id", "notifications/cancelled": "requestId"}

_CODE_BY_KIND: Final = {
    "invalid_message": INVALID_REQUEST,
    "method_not_found": METHOD_NOT_FOUND,
    "invalid_params": INVALID_PARAMS,
    "internal_error": INTERNAL_ERROR,
    "unencodable_result": INTERNAL_ERROR,
    "invalid_json": PARSE_ERROR,
    "cancelled": CANCELLED,
    "deadline_exceeded": TIMEOUT,
    "timeout": TIMEOUT,
    "overloaded": OVERLOADED,
    "unavailable": OVERLOADED,
    "too_large": TOO_LARGE,
}

# Local exceptions: (code, native kind, fixed message). The exception's own text is never sent.
_BY_EXCEPTION: Final[tuple[tuple[type[BaseException], int, str, str], ...]] = (
    (DecodeError, PARSE_ERROR, "invalid_json", "parse error: the document is not valid JSON"),
    (MessageTooLarge, TOO_LARGE, "too_large", "the message is too large"),
    (InvalidMessage, INVALID_REQUEST, "invalid_message", "invalid request"),
    (RequestTimeout, TIMEOUT, "timeout", "the call timed out"),
    (RequestCancelled, CANCELLED, "cancelled", "the call was cancelled"),
    (TooManyPendingRequests, OVERLOADED, "overloaded", "too many pending requests"),
    (OutboxFull, OVERLOADED, "overloaded", "the outbox is full"),
    (EncodeError, INTERNAL_ERROR, "unencodable_result", "the result cannot be encoded as JSON"),
)


class NoId:
    """The type of :data:`NO_ID`: a call without an ``id`` member (a notification), unlike ``"id": null``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_ID"

    def __bool__(self) -> bool:
        return False


#: The id of a notification: the ``id`` member is absent.
NO_ID: Final = NoId()


@dataclass(frozen=True)
class Call:
    """A request (``id`` a string, number or null) or a notification (``id`` is :data:`NO_ID`).

    ``data`` is the ``params`` member as it came (a list or a dict), or None when it is absent.
    """

    method: str
    data: Any
    id: Any = NO_ID

    @property
    def is_notification(self) -> bool:
        """Whether the call has no ``id`` member, so that it gets no answer."""
        return self.id is NO_ID


@dataclass(frozen=True)
class Invalid:
    """An item that is not a valid Request object: answered with ``error`` (``id`` null unless it was readable)."""

    id: Any
    error: dict[str, Any]

    def response(self) -> dict[str, Any]:
        """Return the error response object answering this item."""
        return error_response(self.id, self.error)


@dataclass(frozen=True)
class Reply:
    """A response object: the answer to a call this side sent (``error`` None for a result)."""

    id: Any
    result: Any = None
    error: dict[str, Any] | None = None


#: One item of a document.
Item: TypeAlias = Call | Invalid | Reply


@dataclass(frozen=True)
class Document:
    """A parsed document: its items, whether it was a batch, or one ``error`` that answers it all.

    ``error`` is set (and ``items`` empty) for a document answered with a
    single error object: invalid JSON, an empty batch, a batch over
    :data:`MAX_BATCH` items, a value that is neither an object nor an array.
    """

    items: tuple[Item, ...]
    is_batch: bool = False
    error: dict[str, Any] | None = None


def error_object(code: int, message: str, data: Any = NO_ID) -> dict[str, Any]:
    """Return the error object ``{"code", "message", "data"}`` (no ``data`` member when ``data`` is NO_ID)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not NO_ID:
        error["data"] = data
    return error


def _invalid_request(reason: str) -> dict[str, Any]:
    """Return the INVALID_REQUEST error object for ``reason``."""
    message = f"invalid request: {reason}"
    return error_object(INVALID_REQUEST, message, error_data("invalid_message", message))


def result_response(id: Any, result: Any) -> dict[str, Any]:
    """Return the response object carrying ``result`` for the call ``id``."""
    return {"jsonrpc": VERSION, "id": id, "result": result}


def error_response(id: Any, error: dict[str, Any]) -> dict[str, Any]:
    """Return the response object carrying the error object ``error`` for the call ``id`` (None: null)."""
    return {"jsonrpc": VERSION, "id": id, "error": error}


def _valid_id(value: Any) -> bool:
    """Whether ``value`` may be an id: a string, a number (not a bool) or null."""
    return value is None or type(value) in (str, int, float)


def parse_item(value: Any) -> Item:
    """Return one item of a document: a Call, a Reply, or an Invalid item with its error.

    Extra members are ignored (the specification does not forbid them). The
    ``id`` of an invalid item is echoed when it is valid itself, else null.
    """
    if type(value) is not dict:
        return Invalid(None, _invalid_request("an item must be an object"))
    ident = value.get("id", NO_ID)
    if ident is not NO_ID and not _valid_id(ident):
        return Invalid(None, _invalid_request("id must be a string, a number or null"))
    echo = None if ident is NO_ID else ident
    if value.get("jsonrpc") != VERSION or type(value.get("jsonrpc")) is not str:
        return Invalid(echo, _invalid_request('"jsonrpc" must be exactly "2.0"'))
    if "method" not in value and ("result" in value or "error" in value) and ident is not NO_ID:
        return _parse_reply(value, ident)
    method = value.get("method")
    if type(method) is not str:
        return Invalid(echo, _invalid_request("method must be a string"))
    params = value.get("params")
    if params is not None and type(params) not in (list, dict):
        return Invalid(echo, _invalid_request("params must be an array or an object"))
    if "params" in value and params is None:
        return Invalid(echo, _invalid_request("params must be an array or an object"))
    return Call(method, params, ident)


def _parse_reply(value: dict[str, Any], ident: Any) -> Item:
    """Return the Reply in ``value`` (which has ``result`` or ``error``), or Invalid."""
    if "result" in value:
        if "error" in value:
            return Invalid(ident, _invalid_request("a response has either result or error"))
        return Reply(ident, value["result"])
    error = value["error"]
    if type(error) is not dict or type(error.get("code")) is not int or type(error.get("message")) is not str:
        return Invalid(ident, _invalid_request("error must be an object with an integer code and a string message"))
    return Reply(ident, None, error)


def parse_document(value: Any) -> Document:
    """Return the decoded JSON-RPC document ``value`` (an object, or a batch array) as a Document."""
    if type(value) is dict:
        return Document((parse_item(value),))
    if type(value) is not list:
        return Document((), False, _invalid_request("a document is an object or an array"))
    if not value:
        return Document((), True, _invalid_request("empty batch"))
    if len(value) > MAX_BATCH:
        return Document((), True, _invalid_request(f"batch too large: at most {MAX_BATCH} items"))
    return Document(tuple(parse_item(item) for item in value), True)


def parse_frame(codec: Codec, frame: bytes) -> Document:
    """Decode ``frame`` and parse it; invalid JSON gives a PARSE_ERROR document, an oversize one TOO_LARGE."""
    try:
        value = codec.decode(frame)
    except (DecodeError, MessageTooLarge) as exc:
        return Document((), False, error_from_exception(exc))
    return parse_document(value)


def error_from_data(data: Any) -> dict[str, Any]:
    """Return the error object for the native Error ``data`` (see the table in the module docstring)."""
    if type(data) is dict:
        code, message = data.get("code"), data.get("message")
        if type(code) is int and type(message) is str:
            return error_object(code, message, data.get("data", NO_ID))
        kind = data.get("error")
        text = message if type(message) is str else (kind if type(kind) is str else "server error")
        return error_object(_CODE_BY_KIND.get(kind, SERVER_ERROR) if type(kind) is str else SERVER_ERROR, text, data)
    return error_object(SERVER_ERROR, "server error", data)


def error_from_exception(exc: BaseException) -> dict[str, Any]:
    """Return the error object for an exception raised while handling a call.

    :class:`~rpcengine.errors.RequestException` gives its data's error,
    :class:`~rpcengine.errors.MethodNotFound` METHOD_NOT_FOUND, the local
    exceptions of the table their code; anything else INTERNAL_ERROR. Only
    fixed messages are used: the exception's text and traceback stay here.
    """
    if isinstance(exc, RequestException):
        return error_from_data(exc.data)
    if isinstance(exc, MethodNotFound):
        name = exc.method_name
        return error_from_data(error_data("method_not_found", f"method not found: {name}", method=name))
    for cls, code, kind, message in _BY_EXCEPTION:
        if isinstance(exc, cls):
            return error_object(code, message, error_data(kind, message))
    return error_object(INTERNAL_ERROR, "internal error", error_data("internal_error", "internal error"))


def answer_document(document: Document, answers: list[dict[str, Any] | None]) -> Any:
    """Return what answers ``document``: None (send nothing), one response object, or an array of them.

    ``answers`` holds one entry per item of the document, in order: its
    response object, or None for a notification or a Reply.
    """
    if document.error is not None:
        return error_response(None, document.error)
    sent = [answer for answer in answers if answer is not None]
    if not sent:
        return None
    return sent if document.is_batch else sent[0]


def cancel_target(call: Call) -> Any:
    """Return the id a cancel notification names, or NO_ID if ``call`` is not one.

    ``$/cancelRequest {"id": X}`` (LSP) and ``notifications/cancelled
    {"requestId": X}`` (MCP) are cancels when sent as notifications with an
    object for params and a string or number X; anything else is an ordinary call.
    """
    member = CANCEL_METHODS.get(call.method)
    if member is None or not call.is_notification or type(call.data) is not dict:
        return NO_ID
    target = call.data.get(member)
    return target if type(target) in (str, int, float) else NO_ID


def request_object(id: int, method: str, data: Any) -> dict[str, Any]:
    """Return the request object for a call this side makes (the engine's own ``id``).

    ``data`` None sends no ``params``; a list or a dict is the params; any
    other value is sent as a one-item array.
    """
    request = {"jsonrpc": VERSION, "id": id, "method": method}
    return _with_params(request, data)


def notification_object(method: str, data: Any) -> dict[str, Any]:
    """Return the notification object for ``method`` and ``data`` (params as in :func:`request_object`)."""
    return _with_params({"jsonrpc": VERSION, "method": method}, data)


def _with_params(message: dict[str, Any], data: Any) -> dict[str, Any]:
    """Add ``data`` to ``message`` as its params, per :func:`request_object`."""
    if data is not None:
        message["params"] = data if type(data) in (list, dict) else [data]
    return message


def is_jsonrpc_document(value: Any) -> bool:
    """Whether a decoded first frame is JSON-RPC: an object with ``jsonrpc``, or an array starting with an object."""
    if type(value) is dict:
        return "jsonrpc" in value
    return type(value) is list and bool(value) and type(value[0]) is dict


_WHITESPACE: Final = b" \t\r\n"
#: How far into a frame :func:`is_jsonrpc_frame` looks past whitespace for the first bracket.
_SCAN: Final = 256


def is_jsonrpc_frame(frame: bytes, codec: Codec | None = None) -> bool:
    """Whether the encoded first frame of a connection is JSON-RPC rather than rpcengine's own protocol.

    An object with a ``jsonrpc`` member (rpcengine's handshake is an object
    with a ``rpcengine`` member instead), or an array whose first item is an
    object (native messages are arrays of numbers first). Looks at the
    whitespace and brackets of the first few hundred bytes and, for an
    object, searches its text for ``"jsonrpc"`` in C; with ``codec``, an
    object holding that text is then decoded to tell a member from a
    value: it is JSON-RPC if it has the member, or lacks ``rpcengine``. An
    object that holds the text but is not valid JSON is taken for JSON-RPC
    (it is answered with a parse error). Does not block.
    """
    head = frame[:_SCAN].lstrip(_WHITESPACE)
    if head[:1] == b"{":
        if frame.find(b'"jsonrpc"') < 0:
            return False
        if codec is None:
            return True
        try:
            value = codec.decode(frame)
        except (DecodeError, MessageTooLarge):
            return True
        return type(value) is dict and ("jsonrpc" in value or "rpcengine" not in value)
    return head[:1] == b"[" and head[1:].lstrip(_WHITESPACE)[:1] == b"{"


def _is_reserved(method: str) -> bool:
    """Whether ``method`` is reserved by the specification for rpc-internal methods (``rpc.``)."""
    return method.startswith("rpc.")


def respond(document: Document, call: Callable[[str, Any], Any]) -> Any:
    """Answer every item of ``document`` with ``call(method, data)``, one after another; return the answer.

    The answer is what :func:`answer_document` returns. ``call`` raises
    :class:`~rpcengine.errors.MethodNotFound`,
    :class:`~rpcengine.errors.RequestException` or any exception, which
    becomes the error (see :func:`error_from_exception`); a notification's
    is logged and dropped. Methods starting with ``rpc.`` are reserved and
    not found; cancel notifications are dropped (there is nothing running to
    cancel). Blocks as long as ``call`` does.
    """
    answers: list[dict[str, Any] | None] = []
    for item in document.items:
        if type(item) is Invalid:
            answers.append(item.response())
        elif type(item) is Call:
            answers.append(_run(item, call))
        else:
            answers.append(None)
    return answer_document(document, answers)


def _run(item: Call, call: Callable[[str, Any], Any]) -> dict[str, Any] | None:
    """Run one call; return its response object (None for a notification)."""
    if item.is_notification and cancel_target(item) is not NO_ID:
        return None
    try:
        if _is_reserved(item.method):
            raise MethodNotFound(item.method)
        result = call(item.method, item.data)
    except Exception as exc:
        if not isinstance(exc, (MethodNotFound, RequestException)):
            log.exception("handler for %r raised", item.method)
        if item.is_notification:
            return None
        return error_response(item.id, error_from_exception(exc))
    return None if item.is_notification else result_response(item.id, result)


def respond_frame(codec: Codec, frame: bytes, call: Callable[[str, Any], Any]) -> bytes | None:
    """Decode ``frame``, answer it with :func:`respond` and return the encoded answer, or None for nothing.

    A result that cannot be encoded is answered with INTERNAL_ERROR
    (``unencodable_result``) for its own call only.
    """
    answer = respond(parse_frame(codec, frame), call)
    if answer is None:
        return None
    if type(answer) is list:
        return b"[" + b",".join(_encode_response(codec, response) for response in answer) + b"]"
    return _encode_response(codec, answer)


def _encode_response(codec: Codec, response: dict[str, Any]) -> bytes:
    """Encode one response object; an unencodable result becomes its INTERNAL_ERROR answer."""
    try:
        return codec.encode(response)
    except EncodeError as exc:
        log.error("answer to id %r cannot be encoded: %s", response.get("id"), exc)
        return codec.encode(error_response(response.get("id"), error_from_exception(exc)))
