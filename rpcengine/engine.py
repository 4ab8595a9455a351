"""The Engine: numbers outbound messages, maps responses to requests, runs handlers.

An Engine sits between application code and one transport. It holds no
socket: the transport calls :meth:`Engine.handle_message` for every inbound
message and :meth:`Engine.connection_lost` when it ends. An engine belongs
to the OS thread (and gevent hub) it was made on: its methods run there,
except :meth:`Engine.submit`, :meth:`Engine.submit_async` and
:meth:`Engine.notify_threadsafe`, which any thread may call; the others
raise :class:`~rpcengine.errors.WrongThread` elsewhere.

Calls that do not tie up the caller: :meth:`Engine.call` sends and returns
a :class:`~rpcengine.calls.Call` handle. On a session that negotiated the
``cancel`` and ``deadline`` features (:mod:`rpcengine.features`), a call
that times out or is cancelled tells the peer with a Cancel, a call with a
timeout carries it to the peer, and the peer's Cancel or deadline stops the
work here: a queued request never starts, a running handler is interrupted
(:class:`~rpcengine.errors.HandlerInterrupted` raised in its greenlet).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import gevent
from gevent.event import Event
from gevent.monkey import get_original

from rpcengine.calls import Call
from rpcengine.deadlines import Deadlines
from rpcengine.errors import (
    ConnectionLost,
    EncodeError,
    HandlerInterrupted,
    MethodNotFound,
    OutboxFull,
    RequestCancelled,
    RequestException,
    RequestTimeout,
    TooManyPendingRequests,
    WrongThread,
)
from rpcengine.features import CANCEL, DEADLINE, MAX_STREAM_WINDOW, MAX_TIMEOUT_MS, STREAM
from rpcengine.messages import (
    MAX_MESSAGE_ID,
    Cancel,
    Error,
    Message,
    Notification,
    Request,
    Response,
    StreamCredit,
    StreamItem,
)
from rpcengine.streams import DEFAULT_WINDOW, MAX_COLLECTED, PLAIN_RESULTS, Producer, Stream, collect, is_stream
from rpcengine.transport import TransportInterface
from rpcengine.wire import error_data
from rpcengine.workers import WorkerPool

__all__ = [
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_PENDING",
    "Engine",
    "RpcHandler",
    "current_deadline",
    "error_data",
]

log = logging.getLogger(__name__)

#: A handler takes the inbound Request or Notification and returns the result data
#: (ignored for a Notification). Dispatchers and middleware are RpcHandlers.
RpcHandler: TypeAlias = Callable[[Request | Notification], Any]

#: Default bound on requests this side has sent and not yet seen answered.
DEFAULT_MAX_PENDING = 65536
#: Default number of inbound requests and notifications handled at once.
DEFAULT_MAX_CONCURRENCY = 64
#: Cancels remembered for requests not delivered yet (still in the transport's read-ahead), at most.
MAX_EARLY_CANCELS = 1024

# The thread id, unpatched: a monkey-patched threading would name greenlets instead of threads.
_get_ident: Callable[[], int] = get_original("_thread", "get_ident")
#: Taken (by any thread, briefly, never across a yield) to make an engine's queue of handed-over calls once.
_SUBMISSIONS_MADE = get_original("_thread", "allocate_lock")()

# An inbound request's progress (Request._state): not tracked (no cancel feature, no deadline),
# queued for a worker, running, answered (or to be answered without running).
_UNTRACKED, _QUEUED, _RUNNING, _ANSWERED = 0, 1, 2, 3

# The deadline (time.monotonic) of the request each worker greenlet is running, for those that have one:
# a handler's own calls default to the time its caller has left.
_HANDLER_DEADLINES: dict[Any, float] = {}

_CANCELLED_DATA = "the caller cancelled the request"
_DEADLINE_DATA = "the caller's deadline passed"


def current_deadline() -> float | None:
    """Return the deadline (``time.monotonic()``) of the inbound request the calling handler runs, if it has one.

    A handler's own :meth:`Engine.request` and :meth:`Engine.call` use the
    time left as their timeout (or less, if given less). Does not block.
    """
    if not _HANDLER_DEADLINES:
        return None
    return _HANDLER_DEADLINES.get(gevent.getcurrent())


def _timeout_ms(timeout: float) -> int:
    """Return ``timeout`` seconds as a Request's fifth item: integer milliseconds, at least 1, at most 8 digits."""
    return min(MAX_TIMEOUT_MS, max(1, int(timeout * 1000 + 0.999)))


class Engine:
    """Transport neutral message factory and mapper between requests and responses.

    ``rpc_handler`` is called with each inbound :class:`~rpcengine.messages.Request`
    or :class:`~rpcengine.messages.Notification` (whose ``engine`` attribute
    is this engine) and returns the response data; a dispatcher such as
    :class:`dispatchers.MethodDispatcher` is the usual choice.

    ``default_timeout`` applies to :meth:`request` calls that give none
    (``None``: wait without limit, as long as the transport lives).
    ``max_pending`` bounds the requests awaiting an answer: one more raises
    :class:`~rpcengine.errors.TooManyPendingRequests` at once.
    ``max_concurrency`` bounds the inbound messages handled at once; when
    all are busy, :meth:`handle_message` blocks, which stops the transport
    from reading more.

    The engine belongs to the thread that makes it (see the module docstring).
    """

    def __init__(
        self,
        transport: TransportInterface,
        rpc_handler: RpcHandler,
        *,
        default_timeout: float | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        self.transport = transport
        self.rpc_handler = rpc_handler
        self.default_timeout = default_timeout
        self.max_pending = max_pending
        self.closed = False
        self._last_message_id = 0
        self._pending: dict[int, Call] = {}
        self._workers = WorkerPool(max_concurrency)
        self._close_callbacks: list[Callable[[Engine], object]] = []
        self._no_pending: Event | None = None
        self._deadlines: Deadlines | None = None
        self._hub = gevent.get_hub()
        self._loop = self._hub.loop
        self._thread = _get_ident()
        # Inbound requests that can be cancelled, by id, until answered; and the deadlines of those with one.
        self._inbound: dict[int, Request] = {}
        self._inbound_deadlines: Deadlines | None = None
        self._highest_inbound = -1
        self._early_cancels: dict[int, None] = {}
        # Calls and notifications handed over by other threads, taken by one greenlet here. Made at the
        # first hand-over, as is the queue of Cancels below at the first Cancel: an empty deque costs
        # 760 bytes, twice per connection.
        self._submissions: deque[tuple[Future[Any], bool, str, Any, float | None]] | None = None
        self._submitter: gevent.Greenlet[Any, Any] | None = None
        # Cancels and answers-without-running waiting for the one greenlet that sends them.
        self._soon: deque[tuple[str | None, int, str | None]] | None = None
        self._sender: gevent.Greenlet[Any, Any] | None = None
        # Streams this side consumes (by request id) and produces (by the peer's request id).
        self._streams_in: dict[int, Stream] = {}
        self._streams_out: dict[int, Producer] = {}
        transport.bind(self)

    @property
    def peer_disconnecting(self) -> bool:
        """Whether the peer sent Disconnect (the transport saw it): it takes no new requests."""
        return self.transport.peer_disconnecting

    # -- outbound ---------------------------------------------------------

    def next_message_id(self) -> int:
        """Generate the next message id for outbound messages (1, 2, 3, ...).

        Take it right before handing the message to the transport, with no
        yield in between: messages must be sent in the order of their ids.
        """
        ident = self._last_message_id + 1
        if ident > MAX_MESSAGE_ID:
            ident = 1
        self._last_message_id = ident
        return ident

    @property
    def pending_count(self) -> int:
        """Number of requests sent and not yet answered, timed out, cancelled or lost."""
        return len(self._pending)

    def send(self, message: Message, **kwargs: Any) -> None:
        """Hand ``message`` over to the transport.

        May block (yield) while the transport applies backpressure. Raises
        :class:`~rpcengine.errors.ConnectionLost` if the transport has ended
        and :class:`~rpcengine.errors.EncodeError` if the message cannot be
        encoded (nothing is sent then).
        """
        if self.closed:
            raise ConnectionLost("the transport is closed")
        self.transport.send(message, **kwargs)

    def notify(self, method: str, data: Any = None, **kwargs: Any) -> None:
        """Send a notification: call ``method`` on the peer without waiting for an answer.

        Raises as :meth:`send` does, OutboxFull when the transport stays
        congested (see :meth:`request`), and WrongThread when called from
        another OS thread (use :meth:`notify_threadsafe` there).
        """
        if _get_ident() != self._thread:
            raise WrongThread("Engine.notify called from another thread; use notify_threadsafe()")
        if self.closed:
            raise ConnectionLost("the transport is closed")
        transport = self.transport
        if transport.congested:
            transport.wait_for_room()
        transport.send(Notification(self.next_message_id(), method, data), **kwargs)

    def call(self, method: str, data: Any = None, timeout: float | None = None, **kwargs: Any) -> Call:
        """Send a request now and return its :class:`~rpcengine.calls.Call` handle, without waiting for the answer.

        ``timeout`` in seconds, or the engine's ``default_timeout`` when
        ``None``; inside a handler whose caller set a deadline, at most the
        time it has left. When it passes the call ends with RequestTimeout
        (and the peer is sent a Cancel, if its session takes one). Blocks
        (yields) only while the transport is congested. Raises at once, leaving
        nothing behind: ConnectionLost (the transport ended, or either side
        sent Disconnect), TooManyPendingRequests, OutboxFull, EncodeError,
        and WrongThread from another OS thread (use :meth:`submit` there).
        """
        if _get_ident() != self._thread:
            raise WrongThread("Engine.call/request called from another thread; use submit() or submit_async()")
        if self.closed:
            raise ConnectionLost("the transport is closed")
        transport = self.transport
        if transport.leaving:
            raise ConnectionLost("the connection is closing (Disconnect sent or received)")
        pending = self._pending
        if len(pending) >= self.max_pending:
            raise TooManyPendingRequests(f"{len(pending)} requests are already pending")
        window = kwargs.pop("_stream_window", None) if kwargs else None
        if transport.congested:
            # Wait before numbering: ids reach the wire in order, and the bound is never passed.
            transport.wait_for_room()
        if timeout is None and window is None:
            timeout = self.default_timeout
        if _HANDLER_DEADLINES:
            timeout = self._within_handler_deadline(timeout)
        ident = self._last_message_id + 1  # (next_message_id, inline: the per-call path)
        if ident > MAX_MESSAGE_ID:
            ident = 1
        self._last_message_id = ident
        request = Request(ident, method, data)
        if window is not None:
            request.window = window
        elif timeout is not None and DEADLINE in transport.features:
            milliseconds = int(timeout * 1000 + 0.999)  # (_timeout_ms, inline)
            request.timeout_ms = milliseconds if 0 < milliseconds <= MAX_TIMEOUT_MS else _timeout_ms(timeout)
        call = Call(self, request, timeout)
        pending[ident] = call
        try:
            transport.send(request, **kwargs)
        except BaseException:
            if pending.pop(ident, None) is not None and self._no_pending is not None and not pending:
                self._no_pending.set()
            raise
        if timeout is not None and call._outcome is None:
            deadlines = self._deadlines
            if deadlines is None:
                deadlines = self._deadlines = Deadlines(self._time_out)
            deadlines.add(call, timeout)
        return call

    def stream(
        self, method: str, data: Any = None, timeout: float | None = None, *, window: int = DEFAULT_WINDOW
    ) -> Stream:
        """Call ``method`` for a stream of results; return the :class:`~rpcengine.streams.Stream` to iterate.

        On a session with the ``stream`` and ``cancel`` features the items
        come as the handler yields them, at most ``window`` (1 to
        65,536) ahead of those consumed; on any other the peer's answer
        (one list) is yielded item by item. ``timeout`` bounds each wait
        for the next item (``None``: the engine's ``default_timeout``).
        Sends at once; raises as :meth:`call` does, and ValueError for a bad
        ``window``. Iterating blocks (yields); see :mod:`rpcengine.streams`.
        """
        if type(window) is not int or not 1 <= window <= MAX_STREAM_WINDOW:
            raise ValueError(f"window must be an integer from 1 to {MAX_STREAM_WINDOW}, got {window!r}")
        features = self.transport.features
        streaming = STREAM in features and CANCEL in features
        call = self.call(method, data, None, _stream_window=window) if streaming else self.call(method, data)
        stream = Stream(
            self,
            call,
            window=window,
            timeout=self.default_timeout if timeout is None else timeout,
            streaming=streaming,
        )
        if streaming and not call.ready():
            self._streams_in[call.message_id] = stream
        return stream

    def _forget_stream(self, request_id: int) -> None:
        """The stream asked for by ``request_id`` ended."""
        self._streams_in.pop(request_id, None)

    def request(self, method: str, data: Any = None, timeout: float | None = None, **kwargs: Any) -> Any:
        """Send a request and wait (yielding to the hub) for its answer; return the answer's data.

        The same as ``call(method, data, timeout).get()``: ``timeout`` in
        seconds, or the engine's ``default_timeout`` when ``None``. Raises
        :class:`~rpcengine.errors.RequestException` (with the peer's error
        data) when answered by an Error,
        :class:`~rpcengine.errors.RequestTimeout` when no answer came in
        time, :class:`~rpcengine.errors.ConnectionLost` when the transport
        ended first or the peer is disconnecting,
        :class:`~rpcengine.errors.TooManyPendingRequests` when ``max_pending``
        requests already wait, :class:`~rpcengine.errors.OutboxFull` when the
        transport stays congested (its peer acknowledges nothing) for its
        outbox timeout, :class:`~rpcengine.errors.EncodeError` when
        ``data`` cannot be encoded, and WrongThread from another OS thread.
        In every case the request leaves no entry behind: if the waiting
        greenlet is killed or interrupted, the call is cancelled.
        """
        call = self.call(method, data, timeout, **kwargs)
        try:
            return call.get()
        except BaseException:
            if call._outcome is None:
                self._cancel_call(call)
            raise

    def _within_handler_deadline(self, timeout: float | None) -> float | None:
        """Return ``timeout`` cut to what the calling handler's own caller has left, if it set a deadline."""
        deadline = _HANDLER_DEADLINES.get(gevent.getcurrent())
        if deadline is None:
            return timeout
        remaining = max(0.0, deadline - time.monotonic())
        return remaining if timeout is None or remaining < timeout else timeout

    # -- ending calls -----------------------------------------------------

    def _forget(self, call: Call) -> bool:
        """Take ``call`` out of the pending ones; return False if it was not there."""
        pending = self._pending
        if pending.pop(call.message_id, None) is None:
            return False
        if self._no_pending is not None and not pending:
            self._no_pending.set()
        deadlines = self._deadlines
        if call._deadline is not None and deadlines is not None:
            deadlines.remove(call, call.timeout)  # type: ignore[arg-type]
        return True

    def _time_out(self, call: Call) -> None:
        """Deadlines callback (in the hub): ``call`` got no answer in time; end it and tell the peer."""
        if call._outcome is not None or not self._forget(call):
            return
        call._finish(RequestTimeout(f"no answer to {call.method!r} (id {call.message_id}) within {call.timeout} s"))
        self._send_cancel(call.message_id)

    def _cancel_call(self, call: Call) -> bool:
        """End ``call`` with RequestCancelled and tell the peer; return False if it had ended."""
        if _get_ident() != self._thread:
            raise WrongThread("Call.cancel called from another thread; cancel the future submit() returned")
        if call._outcome is not None:
            return False
        self._forget(call)
        call._finish(RequestCancelled(f"call to {call.method!r} (id {call.message_id}) cancelled"))
        self._send_cancel(call.message_id)
        return True

    def _send_cancel(self, request_id: int) -> None:
        """Tell the peer (if its session takes Cancel) that this side gave up on ``request_id``; does not block."""
        if not self.closed and CANCEL in self.transport.features:
            self._send_soon(None, request_id, None)

    def _send_soon(self, kind: str | None, request_id: int, text: str | None) -> None:
        """Queue a Cancel (``kind`` None) or an Error ``{"error": kind}`` for ``request_id``; does not block.

        One greenlet per engine sends them in order, numbering each as it goes (ids reach the wire in
        order): the hub (a timeout) and Call.cancel() must not block on the transport, and a peer that
        does not read holds up one greenlet and a queue of small tuples, not a greenlet per message.
        """
        soon = self._soon
        if soon is None:
            soon = self._soon = deque()
        soon.append((kind, request_id, text))
        if self._sender is None:
            self._sender = gevent.spawn(self._send_queued)

    def _send_queued(self) -> None:
        """Send what :meth:`_send_soon` queued, in order, logging (never raising) what cannot go."""
        soon = self._soon
        assert soon is not None  # (made before this greenlet is started)
        try:
            while soon and not self.closed:
                kind, request_id, text = soon.popleft()
                if kind is None:
                    message: Message = Cancel(self.next_message_id(), request_id)
                else:
                    message = Error(self.next_message_id(), request_id, error_data(kind, text or kind))
                self._send_quietly(message)
        finally:
            self._sender = None
            if self.closed:
                soon.clear()

    # -- other threads ----------------------------------------------------

    def submit(self, method: str, data: Any = None, timeout: float | None = None) -> Future[Any]:
        """Send a request from any OS thread; return a ``concurrent.futures.Future`` of the answer's data.

        Does not block. The call is made on the engine's hub (handed over
        through the loop's thread-safe callback); the future ends as
        :meth:`Call.get <rpcengine.calls.Call.get>` would: with the data, or
        with RequestException, RequestTimeout, ConnectionLost,
        RequestCancelled, ... Cancelling the future cancels the call (and
        tells the peer). Raises TooManyPendingRequests at once when
        ``max_pending`` calls are pending or handed over, and ConnectionLost
        once the engine is closed. From the hub's own thread, prefer
        :meth:`call` (waiting on the future there would block the hub).
        """
        return self._hand_over(True, method, data, timeout)

    def notify_threadsafe(self, method: str, data: Any = None) -> Future[None]:
        """Send a notification from any OS thread; return a future that ends once it was handed to the transport.

        Does not block; raises as :meth:`submit` does.
        """
        return self._hand_over(False, method, data, None)

    async def submit_async(self, method: str, data: Any = None, timeout: float | None = None) -> Any:
        """Await a request from an asyncio loop running in another thread; return the answer's data.

        Never blocks the asyncio loop. Cancelling the awaiting task cancels
        the call (and sends the peer a Cancel). Raises as :meth:`submit` and
        :meth:`Call.get <rpcengine.calls.Call.get>` do.
        """
        return await asyncio.wrap_future(self.submit(method, data, timeout))

    def _hand_over(self, is_call: bool, method: str, data: Any, timeout: float | None) -> Future[Any]:
        """Queue a call or notification for the submitter greenlet (any thread); wake it."""
        if self.closed:
            raise ConnectionLost("the transport is closed")
        submissions = self._submissions
        if submissions is None:
            with _SUBMISSIONS_MADE:  # (another thread may be making it too)
                if self._submissions is None:
                    self._submissions = deque()
                submissions = self._submissions
        if len(self._pending) + len(submissions) >= self.max_pending:
            raise TooManyPendingRequests(f"{len(self._pending) + len(submissions)} requests are already pending")
        future: Future[Any] = Future()
        entry = (future, is_call, method, data, timeout)
        submissions.append(entry)
        try:
            self._loop.run_callback_threadsafe(self._start_submitter)
        except Exception as exc:  # the hub's loop is gone (its thread ended without closing the engine)
            try:
                submissions.remove(entry)
            except ValueError:
                pass  # (taken meanwhile: it is being made)
            raise ConnectionLost(f"the engine's hub no longer runs: {exc}") from None
        return future

    def _start_submitter(self) -> None:
        """Hub callback: make sure a greenlet takes the handed-over calls."""
        if self._submitter is None and self._submissions:
            self._submitter = gevent.spawn(self._take_submissions)

    def _take_submissions(self) -> None:
        """Make the calls other threads handed over, in order (blocking, yielding, only for backpressure)."""
        submissions = self._submissions
        assert submissions is not None  # (made before this greenlet is started)
        try:
            while submissions:
                future, is_call, method, data, timeout = submissions.popleft()
                if future.cancelled():
                    continue
                try:
                    if is_call:
                        call = self.call(method, data, timeout)
                    else:
                        self.notify(method, data)
                except Exception as exc:
                    _settle(future, None, exc)
                    continue
                if is_call:
                    call.add_done_callback(_FutureBridge(future))
                    future.add_done_callback(_CancelBridge(self, call))
                else:
                    _settle(future, None, None)
        finally:
            self._submitter = None
            if submissions and not self.closed:
                self._submitter = gevent.spawn(self._take_submissions)
        if self.closed:
            self._fail_submissions()

    def _fail_submissions(self) -> None:
        """Fail every handed-over call not made yet (the engine closed)."""
        submissions = self._submissions
        while submissions:  # (None: nothing was ever handed over)
            future = submissions.popleft()[0]
            _settle(future, None, ConnectionLost("the transport is closed"))

    # -- inbound ----------------------------------------------------------

    def handle_message(self, message: Message) -> None:
        """Handle a message received from the transport.

        Answers complete their pending request; Requests and Notifications
        go to a worker (blocking, yielding, while all workers are busy); a
        Cancel is acted on at once. A late or unknown answer is logged and
        dropped.
        """
        # mypy cannot narrow ``message`` through ``kind``, and a cast() would cost a call per
        # message: the casts below run for the type checker only.
        kind = type(message)
        if kind is Response or kind is Error:
            if TYPE_CHECKING:
                message = cast("Response | Error", message)
            pending = self._pending
            call = pending.pop(message.request_message_id, None)
            if call is None:
                log.info("dropped %s for unknown or expired request %d", kind.__name__, message.request_message_id)
                return
            if self._no_pending is not None and not pending:
                self._no_pending.set()
            if call._deadline is not None:
                self._deadlines.remove(call, call.timeout)  # type: ignore[union-attr, arg-type]
            call._finish(message)
        elif self.closed:
            log.debug("dropped %r received after the transport closed", message)
        elif kind is Request:
            if TYPE_CHECKING:
                message = cast(Request, message)
            message.engine = self
            if (message._deadline is not None or CANCEL in self.transport.features) and not self._admit(message):
                return
            if not self._workers.submit(self._run_request, message):
                log.debug("request %r dropped: the engine closed while it waited", message)
        elif kind is Notification:
            if TYPE_CHECKING:
                message = cast(Notification, message)
            message.engine = self
            if not self._workers.submit(self._run_notification, message):
                log.debug("notification %r dropped: the engine closed while it waited", message)
        elif kind is Cancel:
            if TYPE_CHECKING:
                message = cast(Cancel, message)
            self._cancel_inbound(message.request_message_id)
        elif kind is StreamItem:
            if TYPE_CHECKING:
                message = cast(StreamItem, message)
            stream = self._streams_in.get(message.request_message_id)
            if stream is not None:
                stream.item_received(message.data)
            else:
                log.debug("item of ended or unknown stream %d dropped", message.request_message_id)
        elif kind is StreamCredit:
            if TYPE_CHECKING:
                message = cast(StreamCredit, message)
            producer = self._streams_out.get(message.request_message_id)
            if producer is not None:
                producer.credit(message.consumed)
        # Heartbeat and Disconnect concern the transport, which acts on them before they get here.

    def _admit(self, request: Request) -> bool:
        """Track an inbound request that may be cancelled or has a deadline; return False if it must not run."""
        ident = request.message_id
        if ident > self._highest_inbound:
            self._highest_inbound = ident
        early = self._early_cancels
        if early and ident in early:
            del early[ident]
            log.debug("request %r (id %d) cancelled before it was delivered", request.method, ident)
            request._state = _ANSWERED
            self._answer_soon(ident, "cancelled", _CANCELLED_DATA)
            return False
        deadline = request._deadline
        if deadline is not None:
            # (Already passed, it expires at the timer's next turn: answered, never run.)
            deadlines = self._inbound_deadlines
            if deadlines is None:
                deadlines = self._inbound_deadlines = Deadlines(self._deadline_passed)
            deadlines.add(request, request.timeout_ms / 1000, deadline)  # type: ignore[operator]
        request._state = _QUEUED
        self._inbound[ident] = request
        return True

    def _cancel_inbound(self, request_id: int) -> None:
        """The peer gave up on its request ``request_id``: stop it (see the module docstring)."""
        request = self._inbound.get(request_id)
        if request is not None:
            self._interrupt(request, "cancelled", _CANCELLED_DATA)
        elif request_id > self._highest_inbound:
            # Not delivered yet (the transport reads ahead while every handler is busy): refuse it when it comes.
            early = self._early_cancels
            if len(early) >= MAX_EARLY_CANCELS:
                del early[next(iter(early))]
            early[request_id] = None
        else:
            log.debug("Cancel for unknown or finished request %d ignored", request_id)

    def _deadline_passed(self, request: Request) -> None:
        """Deadlines callback (in the hub): the caller of ``request`` stopped waiting."""
        self._interrupt(request, "deadline_exceeded", _DEADLINE_DATA)

    def _interrupt(self, request: Request, reason: str, text: str) -> None:
        """Stop ``request``: never start it if it waits for a worker, else interrupt its handler; does not block."""
        state = request._state
        if state == _QUEUED:
            request._state = _ANSWERED
            self._workers.withdraw(self._run_request, request)
            self._forget_inbound(request)
            log.debug("request %r (id %d) %s before it started", request.method, request.message_id, reason)
            self._answer_soon(request.message_id, reason, text)
        elif state == _RUNNING and request._interrupt is None:
            request._interrupt = reason
            self._loop.run_callback(_throw_into_handler, request)

    def _forget_inbound(self, request: Request) -> None:
        """``request`` is answered (or will be): it can no longer be cancelled; its deadline is gone."""
        inbound = self._inbound
        if inbound.get(request.message_id) is request:
            del inbound[request.message_id]
        if request._deadline is not None and self._inbound_deadlines is not None:
            self._inbound_deadlines.remove(request, request.timeout_ms / 1000)  # type: ignore[operator]

    def _answer_soon(self, request_id: int, kind: str, text: str) -> None:
        """Answer ``request_id`` with the Error ``{"error": kind}`` without running it; does not block."""
        self._send_soon(kind, request_id, text)

    def _run_request(self, request: Request) -> None:
        """Call the handler for ``request`` and send exactly one answer."""
        if self.closed:
            # Its connection is gone for good: the answer could not be sent, so the work is not done.
            log.debug("request %r (id %d) not started: the transport ended", request.method, request.message_id)
            return
        if request._state:
            reply: Response | Error | None = self._run_tracked(request)
            if reply is None:
                return
        else:
            try:
                result = self.rpc_handler(request)
                if type(result) not in PLAIN_RESULTS and is_stream(result):
                    result = self._answer_stream(request, result)
                # The id is taken only once the handler has returned: ids must reach the wire in
                # increasing order (a session transport drops a lower id as a duplicate), and the
                # handler may yield while other messages are numbered and sent.
                ident = self._last_message_id + 1  # (next_message_id, inline: the per-call path)
                if ident > MAX_MESSAGE_ID:
                    ident = 1
                self._last_message_id = ident
                reply = Response(ident, request.message_id, result)
            except MethodNotFound as exc:
                reply = Error(self.next_message_id(), request.message_id, _method_not_found_data(exc))
            except RequestException as exc:
                reply = Error(self.next_message_id(), request.message_id, exc.data)
            except Exception:
                log.exception("handler for request %r (id %d) raised", request.method, request.message_id)
                reply = Error(
                    self.next_message_id(), request.message_id, error_data("internal_error", "internal error")
                )
        try:
            self.transport.send(reply)
        except EncodeError as exc:
            log.error("answer to %r (id %d) cannot be encoded: %s", request.method, request.message_id, exc)
            data = error_data("unencodable_result", "the result cannot be encoded as JSON")
            self._send_quietly(Error(reply.message_id, request.message_id, data))
        except ConnectionLost:
            log.debug("answer to %r (id %d) not sent: connection lost", request.method, request.message_id)
        except OutboxFull as exc:
            log.error("answer to %r (id %d) not sent: %s", request.method, request.message_id, exc)

    def _run_tracked(self, request: Request) -> Response | Error | None:
        """Run a request that may be cancelled or has a deadline, interruptibly; return its one answer.

        None if it was answered while it waited (it was withdrawn then, so this is a rare race).
        """
        if request._state != _QUEUED:
            return None
        ident = request.message_id
        deadline = request._deadline
        if deadline is not None and deadline <= time.monotonic():
            # Its caller stopped waiting before a worker took it (the timer has not said so yet).
            request._state = _ANSWERED
            self._forget_inbound(request)
            log.debug("request %r (id %d) not started: its deadline passed", request.method, ident)
            return Error(self.next_message_id(), ident, error_data("deadline_exceeded", _DEADLINE_DATA))
        worker = gevent.getcurrent()
        request._state = _RUNNING
        request._greenlet = worker
        if deadline is not None:
            _HANDLER_DEADLINES[worker] = deadline
        outcome: Any = None
        failed: BaseException | None = None
        try:
            try:
                outcome = self.rpc_handler(request)
                if type(outcome) not in PLAIN_RESULTS and is_stream(outcome):
                    outcome = self._answer_stream(request, outcome)
            finally:
                request._state = _ANSWERED
                request._greenlet = None
                inbound = self._inbound
                if inbound.get(ident) is request:
                    del inbound[ident]
                if deadline is not None:
                    del _HANDLER_DEADLINES[worker]
                    if request._deadline is not None:  # (None once it expired)
                        self._inbound_deadlines.remove(request, request.timeout_ms / 1000)  # type: ignore[union-attr, operator]
        except (Exception, HandlerInterrupted) as exc:
            failed = exc
        reason = request._interrupt
        if reason is not None:
            log.info("request %r (id %d) interrupted: %s", request.method, ident, reason)
            text = _CANCELLED_DATA if reason == "cancelled" else _DEADLINE_DATA
            return Error(self.next_message_id(), ident, error_data(reason, text))
        if failed is None:
            return Response(self.next_message_id(), ident, outcome)
        if isinstance(failed, MethodNotFound):
            return Error(self.next_message_id(), ident, _method_not_found_data(failed))
        if isinstance(failed, RequestException):
            return Error(self.next_message_id(), ident, failed.data)
        log.error("handler for request %r (id %d) raised", request.method, ident, exc_info=failed)
        return Error(self.next_message_id(), ident, error_data("internal_error", "internal error"))

    def _answer_stream(self, request: Request, items: Any) -> Any:
        """Run a handler's iterator: stream it to a StreamRequest, else collect it; return the answer's data.

        Blocks (yielding) while the generator runs and the caller's credit
        is used up. Raises what the generator raises, and RequestException
        ``stream_too_long`` when a caller that cannot take a stream would
        get more than MAX_COLLECTED items.
        """
        ident = request.message_id
        if request.window is not None:
            producer = self._streams_out[ident] = Producer(request.window)
            try:
                return producer.run(self, ident, items)
            finally:
                del self._streams_out[ident]
        collected, complete = collect(items)
        if not complete:
            raise RequestException(
                error_data(
                    "stream_too_long",
                    f"{request.method!r} streams more than {MAX_COLLECTED} items and this caller cannot take a stream",
                )
            )
        return collected

    def _run_notification(self, notification: Notification) -> None:
        """Call the handler for ``notification``; nothing is sent back."""
        try:
            self.rpc_handler(notification)
        except MethodNotFound as exc:
            log.warning("notification for unknown method %r dropped", exc.method_name)
        except Exception:
            log.exception("handler for notification %r raised", notification.method)

    def _send_quietly(self, message: Message) -> None:
        """Send ``message``, logging instead of raising if the transport is gone."""
        try:
            self.transport.send(message)
        except (ConnectionLost, OutboxFull) as exc:
            log.warning("message %r not sent: %s", message, exc)

    # -- lifecycle --------------------------------------------------------

    def on_close(self, callback: Callable[[Engine], object]) -> None:
        """Call ``callback(engine)`` once when this engine's transport ends (at once if it has)."""
        if self.closed:
            callback(self)
        else:
            self._close_callbacks.append(callback)

    def close(self) -> None:
        """Close the transport; pending requests fail with ConnectionLost. Does not block."""
        if not self.closed:
            self.transport.close()
        self.connection_lost("closed locally")

    def connection_lost(self, reason: str | BaseException | None = None) -> None:
        """Called by the transport when it ends: fail every pending request at once.

        Idempotent. Handlers already running go on (their answers cannot be
        sent); idle workers exit. Calls handed over by other threads and not
        made yet fail too.
        """
        if self.closed:
            return
        self.closed = True
        self.fail_pending(str(reason) if reason is not None else "connection lost")
        if self._deadlines is not None and not self._deadlines.waiting:
            self._deadlines.close()
        if self._inbound_deadlines is not None:
            self._inbound_deadlines.close()
        self._inbound.clear()
        for producer in self._streams_out.values():
            producer.stop()
        self._workers.close()
        if self._submitter is None:
            self._fail_submissions()
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("close callback %r raised", callback)

    def fail_pending(self, reason: str) -> int:
        """Fail every pending request with ConnectionLost(reason), keep the engine open; return how many."""
        pending, self._pending = self._pending, {}
        deadlines = self._deadlines
        for call in pending.values():
            if call._deadline is not None and deadlines is not None:
                deadlines.remove(call, call.timeout)  # type: ignore[arg-type]
            call._finish(ConnectionLost(reason))
        if self._no_pending is not None:
            self._no_pending.set()
        return len(pending)

    def join_pending(self, timeout: float | None = None) -> bool:
        """Wait (yielding) until no request of this side awaits an answer; return False on ``timeout``."""
        if not self._pending:
            return True
        if self._no_pending is None:
            self._no_pending = Event()
        try:
            return self._no_pending.wait(timeout) and not self._pending
        finally:
            self._no_pending = None

    def join_handlers(self, timeout: float | None = None) -> bool:
        """Wait (yielding) until no inbound handler runs; return False on ``timeout``."""
        return self._workers.join(timeout)

    @property
    def saturated(self) -> bool:
        """Whether :meth:`handle_message` would block now on a Request or Notification (all handlers busy)."""
        return self._workers._free <= 0  # WorkerPool.full, without a second call

    @property
    def active_handlers(self) -> int:
        """Number of inbound requests and notifications being handled now (or queued for a worker)."""
        return self._workers.busy

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Engine {state} pending={len(self._pending)} transport={self.transport!r}>"


def _throw_into_handler(request: Request) -> None:
    """Hub callback: raise HandlerInterrupted in the greenlet still running ``request`` (never in a later job)."""
    worker = request._greenlet
    if request._state == _RUNNING and worker is not None and request._interrupt is not None:
        worker.throw(HandlerInterrupted(request._interrupt))


def _settle(future: Future[Any], result: Any, exc: BaseException | None) -> None:
    """End a thread's ``future`` (in the hub thread); a future its thread cancelled meanwhile stays cancelled."""
    try:
        if exc is None:
            future.set_result(result)
        else:
            future.set_exception(exc)
    except InvalidStateError:
        log.debug("future %r was cancelled before its call ended", future)


class _FutureBridge:
    """Done callback of a submitted Call: end the thread's future with the call's outcome."""

    __slots__ = ("future",)

    def __init__(self, future: Future[Any]) -> None:
        self.future = future

    def __call__(self, call: Call) -> None:
        if self.future.done():
            return
        try:
            result = call.result()
        except Exception as exc:
            _settle(self.future, None, exc)
        else:
            _settle(self.future, result, None)


class _CancelBridge:
    """Done callback of a thread's future (runs in whichever thread ends it): a cancelled future cancels its call."""

    __slots__ = ("call", "engine")

    def __init__(self, engine: Engine, call: Call) -> None:
        self.engine = engine
        self.call = call

    def __call__(self, future: Future[Any]) -> None:
        if future.cancelled() and self.call._outcome is None:
            self.engine._loop.run_callback_threadsafe(self.call.cancel)


def _method_not_found_data(exc: MethodNotFound) -> dict[str, Any]:
    """Return the Error data sent for an unknown method."""
    return error_data("method_not_found", f"method not found: {exc.method_name}", method=exc.method_name)
