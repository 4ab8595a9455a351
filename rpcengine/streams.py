"""Streamed results: a handler yields items, the caller consumes them as they come, with flow control.

A handler that returns an iterator (a generator, say) answers a stream. The
caller asks for one with :meth:`Engine.stream <rpcengine.engine.Engine.stream>`
and iterates the :class:`Stream` it returns::

    for item in engine.stream("numbers", 100_000, timeout=5):
        ...

On a session that negotiated the ``stream`` feature (with ``cancel``), the
request is a StreamRequest carrying a *window*: the producer sends each
item in a StreamItem as the generator yields it, but never more than
``window`` items ahead of those the caller consumed; the caller reports
what it consumed with a StreamCredit every half window. So a slow consumer
bounds the producer's memory to one window of items, on both sides. The
stream ends exactly once: with the request's Response (whose data is the
number of items) after the last item, or with its Error after the items
sent before the failure. Cancelling the stream, or leaving the ``for``
loop, sends a Cancel: the generator is closed on the server (its
``finally`` runs).

To a caller that did not ask for a stream (an ordinary request, a peer
without the feature, a JSON-RPC client), the server answers with the items
collected into one list, up to :data:`MAX_COLLECTED` of them; a longer
stream is answered with the Error ``stream_too_long``. Asked of such a
peer, :meth:`Engine.stream` yields the items of that list.

Nothing here blocks but iterating a Stream (yielding to the hub while it
waits for items) and the producer waiting for credit.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from itertools import islice
from types import NoneType
from typing import TYPE_CHECKING, Any, Final

from gevent.event import Event

from rpcengine import calls
from rpcengine.errors import ConnectionLost, RequestException, RequestTimeout
from rpcengine.messages import StreamCredit, StreamItem

if TYPE_CHECKING:
    from rpcengine.engine import Engine

__all__ = ["DEFAULT_WINDOW", "MAX_COLLECTED", "PLAIN_RESULTS", "Producer", "Stream", "collect", "is_stream"]

log = logging.getLogger(__name__)

#: Items a producer may have sent ahead of what the caller consumed, unless the caller asks otherwise.
DEFAULT_WINDOW: Final = 64
#: Most items collected into one list for a caller that cannot take a stream.
MAX_COLLECTED: Final = 10_000

#: Result types that are never streams (checked first: the per-request path).
PLAIN_RESULTS: Final = frozenset({dict, list, str, int, float, bool, NoneType, tuple, bytes})


def is_stream(result: Any) -> bool:
    """Whether a handler's ``result`` is an iterator to stream (a generator, ``iter(...)``, ``map(...)``)."""
    return type(result) not in PLAIN_RESULTS and hasattr(result, "__next__")


def collect(items: Iterator[Any]) -> tuple[list[Any], bool]:
    """Return up to :data:`MAX_COLLECTED` items of ``items`` and whether that was all of them; closes it.

    Runs the iterator on the calling greenlet (it may block, as a handler may).
    """
    try:
        collected = list(islice(items, MAX_COLLECTED + 1))
    finally:
        _close(items)
    if len(collected) > MAX_COLLECTED:
        return collected[:MAX_COLLECTED], False
    return collected, True


def _close(items: Iterator[Any]) -> None:
    """Close a generator (its ``finally`` runs); other iterators have nothing to close."""
    close = getattr(items, "close", None)
    if close is not None:
        close()


class Producer:
    """The sending side of one stream: items go out no faster than the caller's credit allows.

    ``sent`` items went out, the caller reported ``consumed``; at most
    ``window`` are ever in between (``peak`` is the most there were).
    """

    __slots__ = ("_room", "_stopped", "consumed", "peak", "sent", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.sent = 0
        self.consumed = 0
        self.peak = 0
        self._room = Event()
        self._stopped = False

    def stop(self) -> None:
        """The connection is gone: a producer waiting for credit raises ConnectionLost. Does not block."""
        self._stopped = True
        self._room.set()

    def credit(self, consumed: int) -> None:
        """The caller consumed ``consumed`` items in all: wake the producer if it waits for room. Does not block."""
        if consumed > self.consumed:
            self.consumed = min(consumed, self.sent)
            self._room.set()

    def run(self, engine: Engine, request_id: int, items: Iterator[Any]) -> int:
        """Send every item of ``items`` as a StreamItem of ``request_id``; return how many (blocks, yielding).

        Waits for credit whenever ``window`` items are unconsumed. Raises
        what the iterator raises, EncodeError for an item that cannot be
        encoded, ConnectionLost; the iterator is closed in every case.
        """
        transport = engine.transport
        window = self.window
        room = self._room
        try:
            for item in items:
                while self.sent - self.consumed >= window:
                    if self._stopped:
                        raise ConnectionLost("the connection ended while the stream waited for credit")
                    room.clear()
                    room.wait()
                transport.send(StreamItem(engine.next_message_id(), request_id, item))
                self.sent += 1
                ahead = self.sent - self.consumed
                if ahead > self.peak:
                    self.peak = ahead
        finally:
            _close(items)
        return self.sent


class Stream:
    """The caller's side of one stream: iterate it for the items (see the module docstring).

    ``call`` is the request's :class:`~rpcengine.calls.Call`; ``streaming``
    whether the peer streams (else the answer is one list). ``timeout`` is
    the longest wait for the next item (None: no limit); past it the stream
    is cancelled and RequestTimeout raised. Iterate it once.
    """

    def __init__(
        self, engine: Engine, call: calls.Call, *, window: int, timeout: float | None, streaming: bool
    ) -> None:
        self._engine = engine
        self.call = call
        self.window = window
        self.timeout = timeout
        self.streaming = streaming
        #: Items received and not yet consumed (never more than ``window`` on a streaming peer).
        self.buffered: deque[Any] = deque()
        #: Items consumed so far.
        self.consumed = 0
        self._credited = 0
        self._arrived = Event()
        self._started = False
        call.add_done_callback(self._ended)

    @property
    def message_id(self) -> int:
        """The id of the request that asked for the stream."""
        return self.call.message_id

    def _ended(self, call: calls.Call) -> None:
        """Done callback (in the hub): the stream's request ended; wake the consumer."""
        self._engine._forget_stream(call.message_id)
        self._arrived.set()

    def item_received(self, item: Any) -> None:
        """The engine received a StreamItem for this stream. Does not block."""
        self.buffered.append(item)
        self._arrived.set()

    def cancel(self) -> bool:
        """Stop the stream: the producer's generator is closed. Return whether it was still running."""
        return self.call.cancel()

    def __iter__(self) -> Iterator[Any]:
        """Yield the items as they come (blocks, yielding, while none is there).

        Raises RequestException (the peer's Error, after the items sent
        before it), RequestTimeout, RequestCancelled or ConnectionLost.
        Leaving the loop early cancels the stream.
        """
        if self._started:
            raise RuntimeError("a stream is iterated once")
        self._started = True
        finished = False
        try:
            yield from self._items()
            finished = True
        finally:
            if not finished and not self.call.ready():
                self.cancel()

    def _items(self) -> Iterator[Any]:
        """Yield the items (see :meth:`__iter__`)."""
        call = self.call
        buffered = self.buffered
        arrived = self._arrived
        while True:
            if buffered:
                item = buffered.popleft()
                self.consumed += 1
                if self.streaming and self.consumed - self._credited >= max(1, self.window // 2):
                    self._credit()
                yield item
                continue
            if call.ready():
                result = call.get()  # raises the Error, the timeout, the cancel, the loss
                if not self.streaming:
                    if type(result) is not list:
                        raise RequestException({"error": "not_a_stream", "message": "the answer is not a list"})
                    yield from self._list(result)
                return
            arrived.clear()
            if not arrived.wait(self.timeout) and not buffered and not call.ready():
                call.cancel()
                raise RequestTimeout(f"no item of stream {call.method!r} within {self.timeout} s")

    def _list(self, items: list[Any]) -> Iterator[Any]:
        """Yield the items of a collected answer."""
        for item in items:
            self.consumed += 1
            yield item

    def _credit(self) -> None:
        """Tell the producer how many items were consumed (it may send a window beyond)."""
        self._credited = self.consumed
        engine = self._engine
        try:
            engine.send(StreamCredit(engine.next_message_id(), self.call.message_id, self.consumed))
        except ConnectionLost:
            log.debug("credit for stream %d not sent: connection lost", self.call.message_id)
