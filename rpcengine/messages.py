"""The six message kinds of the wire protocol and their JSON list layouts.

=============  ====  ==========================================
kind           code  JSON list
=============  ====  ==========================================
Heartbeat         0  ``[0, last_message_id]``
Notification      1  ``[1, message_id, method, data]``
Request           2  ``[2, message_id, method, data]``
Response          3  ``[3, message_id, request_message_id, data]``
Error             4  ``[4, message_id, request_message_id, data]``
Disconnect       -1  ``[-1]``
Cancel            5  ``[5, message_id, request_message_id]``
StreamRequest     6  ``[6, message_id, method, data, window]``
StreamItem        7  ``[7, message_id, request_message_id, item]``
StreamCredit      8  ``[8, message_id, request_message_id, consumed]``
=============  ====  ==========================================

Cancel, and a Request's optional fifth item ``timeout_ms`` (``[2, message_id,
method, data, timeout_ms]``), exist only on sessions that negotiated the
``cancel`` and ``deadline`` features (:mod:`rpcengine.features`), the three
stream messages only on those that negotiated ``stream``: the parser accepts
them only when told the features are on. A StreamRequest is a
:class:`Request` whose ``window`` is set.

Parsing is strict: :meth:`Message.from_list` accepts exactly these layouts and
raises :class:`~rpcengine.errors.InvalidMessage` for anything else (never
``IndexError`` or ``TypeError``). A message id is an ``int`` (not a ``bool``)
with ``0 <= id < 2**53``, so that JavaScript peers represent it exactly; a
method is a non-empty ``str``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, cast

from gevent.event import Event

from rpcengine.errors import ConnectionLost, InvalidMessage, RequestTimeout
from rpcengine.features import CANCEL, DEADLINE, MAX_STREAM_WINDOW, MAX_TIMEOUT_MS, NO_FEATURES, STREAM

if TYPE_CHECKING:
    from rpcengine.engine import Engine

__all__ = [
    "MAX_MESSAGE_ID",
    "Cancel",
    "Disconnect",
    "Error",
    "Heartbeat",
    "Message",
    "Notification",
    "Request",
    "Response",
    "StreamCredit",
    "StreamItem",
]

#: Message ids stay below 2**53 so that every JavaScript number holds them exactly.
MAX_MESSAGE_ID = 2**53 - 1


def _check_id(value: Any, what: str, request_id: int | None = None) -> int:
    """Return ``value`` if it is a valid message id, else raise InvalidMessage."""
    if type(value) is not int or not 0 <= value <= MAX_MESSAGE_ID:
        raise InvalidMessage(f"{what} must be an integer from 0 to 2**53-1, got {_short(value)}", request_id)
    return value


def _check_method(value: Any, request_id: int | None) -> str:
    """Return ``value`` if it is a valid method name, else raise InvalidMessage."""
    if type(value) is not str or not value:
        raise InvalidMessage(f"method must be a non-empty string, got {_short(value)}", request_id)
    return value


def _check_length(items: list[Any], length: int, name: str, request_id: int | None = None) -> None:
    """Raise InvalidMessage unless ``items`` has exactly ``length`` entries."""
    if len(items) != length:
        raise InvalidMessage(f"{name} takes a list of {length} items, got {len(items)}", request_id)


def _check_bounded(value: Any, low: int, high: int, what: str, request_id: int | None) -> int:
    """Return ``value`` if it is an integer from ``low`` to ``high``, else raise InvalidMessage naming ``what``."""
    if type(value) is not int or not low <= value <= high:
        raise InvalidMessage(f"{what} must be an integer from {low} to {high}, got {_short(value)}", request_id)
    return value


def _short(value: Any) -> str:
    """Return a bounded repr of ``value`` for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Message:
    """Base class for all messages."""

    __slots__ = ()
    code: ClassVar[int]

    @staticmethod
    def from_list(l: Any, features: frozenset[str] = NO_FEATURES) -> Message:  # noqa: E741 - the seed API names it l
        """Parse a list as defined in the protocol into a message object.

        Raises :class:`~rpcengine.errors.InvalidMessage` for any value that is
        not one of the six layouts; its ``request_id`` is set when the value
        looks like a Request whose id could be read. With ``features``
        naming ``"cancel"`` a Cancel is accepted too, with ``"deadline"`` a
        Request with a fifth item (see :mod:`rpcengine.features`).
        """
        if type(l) is not list:
            raise InvalidMessage(f"a message is a JSON list, got {type(l).__name__}")
        if len(l) == 4:
            # The four shapes that carry calls and answers, checked inline (the per-message path);
            # anything that fails here goes the long way below, which says what is wrong.
            code, ident, third = l[0], l[1], l[2]
            if type(code) is int and type(ident) is int and 0 <= ident <= MAX_MESSAGE_ID:
                if code == 3 or code == 4:
                    if type(third) is int and 0 <= third <= MAX_MESSAGE_ID:
                        return (Response if code == 3 else Error)(ident, third, l[3])
                elif (code == 2 or code == 1) and type(third) is str and third:
                    return (Request if code == 2 else Notification)(ident, third, l[3])
                elif code == 7 and type(third) is int and 0 <= third <= MAX_MESSAGE_ID and STREAM in features:
                    return StreamItem(ident, third, l[3])
        elif len(l) == 5 and features and DEADLINE in features:
            # A Request with its caller's deadline, the same way (the per-message path on such a session).
            code, ident, method, timeout_ms = l[0], l[1], l[2], l[4]
            if (
                code == 2
                and type(code) is int
                and type(ident) is int
                and 0 <= ident <= MAX_MESSAGE_ID
                and type(method) is str
                and method
                and type(timeout_ms) is int
                and 0 <= timeout_ms <= MAX_TIMEOUT_MS
            ):
                request = Request(ident, method, l[3])
                request.timeout_ms = timeout_ms
                request._deadline = time.monotonic() + timeout_ms / 1000
                return request
        if not l:
            raise InvalidMessage("a message list cannot be empty")
        code = l[0]
        if features:
            if code == 2 and len(l) == 5 and DEADLINE in features and type(code) is int:
                return Request.from_list(l, features)
            if code == 5 and CANCEL in features and type(code) is int:
                return Cancel.from_list(l)
            if STREAM in features and type(code) is int and code in _STREAM_CODES:
                return cast(Message, _STREAM_CODES[code].from_list(l, features))
        cls = _BY_CODE.get(code) if type(code) is int else None
        if cls is None:
            raise InvalidMessage(f"unknown message code {_short(code)}", _recover_request_id(l))
        return cls.from_list(l)

    def to_list(self) -> list[Any]:
        """Serialize this message into a list."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_list() == self.to_list()

    def __hash__(self) -> int:
        return hash(repr(self.to_list()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_list()!r})"


def _recover_request_id(items: list[Any]) -> int | None:
    """Return the id of a list that claims to be a Request, if it can be read."""
    if len(items) >= 2 and type(items[0]) is int and items[0] == Request.code:
        ident = items[1]
        if type(ident) is int and 0 <= ident <= MAX_MESSAGE_ID:
            return ident
    return None


class Heartbeat(Message):
    """Heartbeat message: acknowledges every message up to ``last_message_id``."""

    __slots__ = ("last_message_id",)
    code: ClassVar[int] = 0

    def __init__(self, last_message_id: int) -> None:
        self.last_message_id = last_message_id

    @staticmethod
    def from_list(l: Any, features: frozenset[str] = NO_FEATURES) -> Heartbeat:  # noqa: E741
        """Parse list into a heartbeat message."""
        _check_length(l, 2, "Heartbeat")
        return Heartbeat(_check_id(l[1], "last_message_id"))

    def to_list(self) -> list[Any]:
        """Serialize this message into a list."""
        return [0, self.last_message_id]


class Notification(Message):
    """Notification message: calls ``method`` and expects no answer.

    ``engine`` is the Engine that received it (``None`` for outbound ones), so
    a handler can talk back over the same connection.
    """

    __slots__ = ("data", "engine", "message_id", "method")
    code: ClassVar[int] = 1

    def __init__(self, message_id: int, method: str, data: Any = None) -> None:
        self.message_id = message_id
        self.method = method
        self.data = data
        self.engine: Engine | None = None

    @staticmethod
    def from_list(l: Any, features: frozenset[str] = NO_FEATURES) -> Notification:  # noqa: E741
        """Parse list into a notification message."""
        _check_length(l, 4, "Notification")
        return Notification(_check_id(l[1], "message_id"), _check_method(l[2], None), l[3])

    def to_list(self) -> list[Any]:
        """Serialize this message into a list."""
        return [1, self.message_id, self.method, self.data]


class Request(Message):
    """Request message: calls ``method`` and expects exactly one Response or Error.

    For an inbound request ``engine`` is the Engine that received it, so a
    handler can call its peer back over the same connection.
    """

    __slots__ = (
        "_deadline",
        "_event",
        "_greenlet",
        "_interrupt",
        "_state",
        "data",
        "engine",
        "message_id",
        "method",
        "response",
        "timeout_ms",
        "window",
    )
    code: ClassVar[int] = 2

    def __init__(self, message_id: int, method: str, data: Any = None) -> None:
        self.message_id = message_id
        self.method = method
        self.data = data
        self.engine: Engine | None = None
        #: The caller's relative deadline in milliseconds, the fifth item (``deadline`` feature), or None.
        self.timeout_ms: int | None = None
        #: For a StreamRequest (``stream`` feature): how many items may be sent ahead of those consumed.
        self.window: int | None = None
        #: The Response or Error once it arrived; a ConnectionLost if the transport closed first.
        self.response: Response | Error | ConnectionLost | None = None
        self._event: Event | None = None
        # For an inbound request: when (time.monotonic) its caller stops waiting (from timeout_ms),
        # how far the engine got with it, the worker running it, and why it is being interrupted.
        self._deadline: float | None = None
        self._state = 0
        self._greenlet: Any = None
        self._interrupt: str | None = None

    @property
    def deadline(self) -> float | None:
        """For an inbound request with ``timeout_ms``: the ``time.monotonic()`` at which its caller gives up."""
        return self._deadline

    @staticmethod
    def from_list(l: Any, features: frozenset[str] = NO_FEATURES) -> Request:  # noqa: E741
        """Parse list into a request message (with ``"deadline"`` in ``features``, a fifth item is allowed)."""
        request_id = _recover_request_id(l)
        if len(l) == 5 and DEADLINE in features:
            timeout_ms = _check_bounded(l[4], 0, MAX_TIMEOUT_MS, "a Request's timeout_ms", request_id)
            request = Request(_check_id(l[1], "message_id"), _check_method(l[2], request_id), l[3])
            request.timeout_ms = timeout_ms
            request._deadline = time.monotonic() + timeout_ms / 1000
            return request
        _check_length(l, 4, "Request", request_id)
        return Request(_check_id(l[1], "message_id"), _check_method(l[2], request_id), l[3])

    def to_list(self) -> list[Any]:
        """Serialize this message into a list (five items with ``timeout_ms``; a StreamRequest with ``window``)."""
        if self.timeout_ms is None:
            if self.window is not None:
                return [6, self.message_id, self.method, self.data, self.window]
            return [2, self.message_id, self.method, self.data]
        return [2, self.message_id, self.method, self.data, self.timeout_ms]

    def get_response(self, block: bool = True, timeout: float | None = None) -> Response | Error:
        """Get the Response or Error for this request.

        With ``block`` true, waits (yielding to the gevent hub) up to
        ``timeout`` seconds, or without limit for ``None``. Raises
        :class:`~rpcengine.errors.RequestTimeout` when no answer came in
        time (at once when ``block`` is false), and
        :class:`~rpcengine.errors.ConnectionLost` when the transport closed
        before an answer arrived.
        """
        response = self.response
        if response is None and block:
            event = self._event
            if event is None:
                event = self._event = Event()
            event.wait(timeout)
            response = self.response
        if response is None:
            raise RequestTimeout(f"no answer to {self.method!r} (id {self.message_id}) within {timeout} s")
        if type(response) is ConnectionLost:
            raise response
        if TYPE_CHECKING:  # a subclass of ConnectionLost is never set; cast() would cost a call per request
            response = cast("Response | Error", response)
        return response

    def set_response(self, response: Response | Error | ConnectionLost) -> bool:
        """Record the answer and wake :meth:`get_response` callers; return False if one was already set."""
        if self.response is not None:
            return False
        self.response = response
        if self._event is not None:
            self._event.set()
        return True


class _Reply(Message):
    """Common part of Response and Error: a reply naming the request it answers."""

    __slots__ = ("data", "message_id", "request_message_id")

    def __init__(self, message_id: int, request_message_id: int, data: Any = None) -> None:
        self.message_id = message_id
        self.request_message_id = request_message_id
        self.data = data

    def to_list(self) -> list[Any]:
        """Serialize this message into a list."""
        return [self.code, self.message_id, self.request_message_id, self.data]


class Response(_Reply):
    """Response message: the successful answer to a Request."""

    __slots__ = ()
    code: ClassVar[int] = 3

    @staticmethod
    def for_request(message_id: int, request: Request, data: Any = None) -> Response:
        """Named constructor when the request is known (seed API; the Engine's hot path builds its answers directly)."""
        return Response(message_id, request.message_id, data)

    @staticmethod
    def from_list(l: Any, features: frozenset[str] = NO_FEATURES) -> Response:  # noqa: E741
        """Parse list into a response message."""
        _check_length(l, 4, "Response")
        return Response(_check_id(l[1], "message_id"), _check_id(l[2], "request_message_id"), l[3])


class Error(_Reply):
    """Error message: the failure answer to a Request.

    This is the message class, not the exception: the Engine raises
    :class:`~rpcengine.errors.RequestException` upon receiving it.
    """

    __slots__ = ()
    code: ClassVar[int] = 4

    @staticmethod
    def for_request(message_id: int, request: Request, data: Any = None) -> Error:
        """Named constructor when the request is known (seed API; the Engine's hot path builds its answers directly)."""
        return Error(message_id, request.message_id, data)

    @staticmethod
    def from_list(l: Any, features: frozenset[str] = NO_FEATURES) -> Error:  # noqa: E741
        """Parse list into an error message."""
        _check_length(l, 4, "Error")
        return Error(_check_id(l[1], "message_id"), _check_id(l[2], "request_message_id"), l[3])


class Disconnect(Message):
    """Disconnect message: the sender takes no new requests and will close.

    Answers to requests it already received still follow before it closes.
    """

    __slots__ = ()
    code: ClassVar[int] = -1

    @staticmethod
    def from_list(l: Any, features: frozenset[str] = NO_FEATURES) -> Disconnect:  # noqa: E741
        """Parse list into a disconnect message."""
        _check_length(l, 1, "Disconnect")
        return Disconnect()

    def to_list(self) -> list[Any]:
        """Serialize this message into a list."""
        return [-1]


class Cancel(Message):
    """Cancel message: the sender gave up on its request ``request_message_id`` (``cancel`` feature).

    The receiver does not start that request, or interrupts its handler, and
    answers it with an Error ``{"error": "cancelled", ...}`` unless it had
    answered already. A Cancel for an unknown or finished request is ignored.
    """

    __slots__ = ("message_id", "request_message_id")
    code: ClassVar[int] = 5

    def __init__(self, message_id: int, request_message_id: int) -> None:
        self.message_id = message_id
        self.request_message_id = request_message_id

    @staticmethod
    def from_list(l: Any, features: frozenset[str] = NO_FEATURES) -> Cancel:  # noqa: E741
        """Parse list into a cancel message."""
        _check_length(l, 3, "Cancel")
        return Cancel(_check_id(l[1], "message_id"), _check_id(l[2], "request_message_id"))

    def to_list(self) -> list[Any]:
        """Serialize this message into a list."""
        return [5, self.message_id, self.request_message_id]


class StreamRequest:
    """Parser of the StreamRequest ``[6, message_id, method, data, window]`` (``stream`` feature).

    It parses into a :class:`Request` whose ``window`` (1 to
    :data:`~rpcengine.features.MAX_STREAM_WINDOW`) is set: the caller wants
    the handler's items as they come, at most ``window`` ahead of those it
    consumed.
    """

    code: ClassVar[int] = 6

    @staticmethod
    def from_list(l: Any, features: frozenset[str] = NO_FEATURES) -> Request:  # noqa: E741
        """Parse list into a Request with its ``window``."""
        request_id = l[1] if len(l) >= 2 and type(l[1]) is int and 0 <= l[1] <= MAX_MESSAGE_ID else None
        _check_length(l, 5, "StreamRequest", request_id)
        window = _check_bounded(l[4], 1, MAX_STREAM_WINDOW, "a StreamRequest's window", request_id)
        request = Request(_check_id(l[1], "message_id"), _check_method(l[2], request_id), l[3])
        request.window = window
        return request


class StreamItem(_Reply):
    """StreamItem message: one item of the stream answering StreamRequest ``request_message_id``."""

    __slots__ = ()
    code: ClassVar[int] = 7

    @staticmethod
    def from_list(l: Any, features: frozenset[str] = NO_FEATURES) -> StreamItem:  # noqa: E741
        """Parse list into a stream item."""
        _check_length(l, 4, "StreamItem")
        return StreamItem(_check_id(l[1], "message_id"), _check_id(l[2], "request_message_id"), l[3])


class StreamCredit(Message):
    """StreamCredit message: the caller consumed ``consumed`` items of stream ``request_message_id`` so far.

    The producer may then have up to ``consumed + window`` items sent.
    """

    __slots__ = ("consumed", "message_id", "request_message_id")
    code: ClassVar[int] = 8

    def __init__(self, message_id: int, request_message_id: int, consumed: int) -> None:
        self.message_id = message_id
        self.request_message_id = request_message_id
        self.consumed = consumed

    @staticmethod
    def from_list(l: Any, features: frozenset[str] = NO_FEATURES) -> StreamCredit:  # noqa: E741
        """Parse list into a stream credit."""
        _check_length(l, 4, "StreamCredit")
        consumed = _check_id(l[3], "consumed")
        return StreamCredit(_check_id(l[1], "message_id"), _check_id(l[2], "request_message_id"), consumed)

    def to_list(self) -> list[Any]:
        """Serialize this message into a list."""
        return [8, self.message_id, self.request_message_id, self.consumed]


_STREAM_CODES: dict[int, Any] = {6: StreamRequest, 7: StreamItem, 8: StreamCredit}  # parsers of Messages

_BY_CODE: dict[int, type[Message]] = {
    cls.code: cls for cls in (Heartbeat, Notification, Request, Response, Error, Disconnect)
}
