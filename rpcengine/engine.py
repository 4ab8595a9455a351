"""The Engine: numbers outbound messages, maps responses to requests, runs handlers.

An Engine sits between application code and one transport. It holds no
socket: the transport calls :meth:`Engine.handle_message` for every inbound
message and :meth:`Engine.connection_lost` when it ends. Everything here
runs on gevent and is meant for one OS thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from gevent.event import Event
from gevent.hub import Waiter

from rpcengine.deadlines import Deadlines
from rpcengine.errors import (
    ConnectionLost,
    EncodeError,
    MethodNotFound,
    OutboxFull,
    RequestException,
    RequestTimeout,
    TooManyPendingRequests,
)
from rpcengine.messages import (
    MAX_MESSAGE_ID,
    Error,
    Message,
    Notification,
    Request,
    Response,
)
from rpcengine.transport import TransportInterface
from rpcengine.wire import error_data
from rpcengine.workers import WorkerPool

__all__ = ["DEFAULT_MAX_CONCURRENCY", "DEFAULT_MAX_PENDING", "Engine", "RpcHandler", "error_data"]

log = logging.getLogger(__name__)

#: A handler takes the inbound Request or Notification and returns the result data
#: (ignored for a Notification). Dispatchers and middleware are RpcHandlers.
RpcHandler: TypeAlias = Callable[[Request | Notification], Any]

#: Default bound on requests this side has sent and not yet seen answered.
DEFAULT_MAX_PENDING = 65536
#: Default number of inbound requests and notifications handled at once.
DEFAULT_MAX_CONCURRENCY = 64


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
        self._pending: dict[int, Request] = {}
        self._workers = WorkerPool(max_concurrency)
        self._close_callbacks: list[Callable[[Engine], object]] = []
        self._no_pending: Event | None = None
        self._deadlines: Deadlines | None = None
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
        """Number of requests sent and not yet answered, timed out or lost."""
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

        Raises as :meth:`send` does, and OutboxFull when the transport stays
        congested (see :meth:`request`).
        """
        if self.closed:
            raise ConnectionLost("the transport is closed")
        transport = self.transport
        if transport.congested:
            transport.wait_for_room()
        transport.send(Notification(self.next_message_id(), method, data), **kwargs)

    def request(self, method: str, data: Any = None, timeout: float | None = None, **kwargs: Any) -> Any:
        """Send a request and wait (yielding to the hub) for its answer; return the answer's data.

        ``timeout`` in seconds, or the engine's ``default_timeout`` when
        ``None``. Raises :class:`~rpcengine.errors.RequestException` (with the
        peer's error data) when answered by an Error,
        :class:`~rpcengine.errors.RequestTimeout` when no answer came in
        time, :class:`~rpcengine.errors.ConnectionLost` when the transport
        ended first or the peer is disconnecting,
        :class:`~rpcengine.errors.TooManyPendingRequests` when ``max_pending``
        requests already wait, :class:`~rpcengine.errors.OutboxFull` when the
        transport stays congested (its peer acknowledges nothing) for its
        outbox timeout, and :class:`~rpcengine.errors.EncodeError` when
        ``data`` cannot be encoded. In every case the request leaves no entry
        behind.
        """
        if self.closed:
            raise ConnectionLost("the transport is closed")
        if self.transport.leaving:
            raise ConnectionLost("the connection is closing (Disconnect sent or received)")
        pending = self._pending
        if len(pending) >= self.max_pending:
            raise TooManyPendingRequests(f"{len(pending)} requests are already pending")
        transport = self.transport
        if transport.congested:
            # Wait before numbering: ids reach the wire in order, and the bound is never passed.
            transport.wait_for_room()
        ident = self.next_message_id()
        request = Request(ident, method, data)
        pending[ident] = request
        if timeout is None:
            timeout = self.default_timeout
        try:
            transport.send(request, **kwargs)
            if request.response is None:
                self._wait(request, timeout)
        finally:
            pending.pop(ident, None)
            if self._no_pending is not None and not pending:
                self._no_pending.set()
        response = request.response
        kind = type(response)
        if kind is Response:
            return response.data  # type: ignore[union-attr]
        if kind is Error:
            raise RequestException(response.data)  # type: ignore[union-attr]
        if response is None:
            raise RequestTimeout(f"no answer to {method!r} (id {ident}) within {timeout} s")
        raise response  # type: ignore[misc]  # the ConnectionLost that ended it

    def _wait(self, request: Request, timeout: float | None) -> None:
        """Block (yielding) until ``request`` is answered or failed, or ``timeout`` passed."""
        waiter: Waiter[Any] = Waiter()
        request._waiter = waiter
        deadlines = None
        if timeout is not None:
            deadlines = self._deadlines
            if deadlines is None:
                deadlines = self._deadlines = Deadlines()
            deadlines.add(request, timeout)
        try:
            waiter.get()
        finally:
            request._waiter = None
            if deadlines is not None:
                deadlines.remove(request, timeout)  # type: ignore[arg-type]

    # -- inbound ----------------------------------------------------------

    def handle_message(self, message: Message) -> None:
        """Handle a message received from the transport.

        Answers complete their pending request; Requests and Notifications
        go to a worker (blocking, yielding, while all workers are busy). A
        late or unknown answer is logged and dropped.
        """
        # mypy cannot narrow ``message`` through ``kind``, and a cast() would cost a call per
        # message: the casts below run for the type checker only.
        kind = type(message)
        if kind is Response or kind is Error:
            if TYPE_CHECKING:
                message = cast("Response | Error", message)
            request = self._pending.pop(message.request_message_id, None)
            if request is None:
                log.info("dropped %s for unknown or expired request %d", kind.__name__, message.request_message_id)
            else:
                request.set_response(message)
        elif self.closed:
            log.debug("dropped %r received after the transport closed", message)
        elif kind is Request:
            if TYPE_CHECKING:
                message = cast(Request, message)
            message.engine = self
            if not self._workers.submit(self._run_request, message):
                log.debug("request %r dropped: the engine closed while it waited", message)
        elif kind is Notification:
            if TYPE_CHECKING:
                message = cast(Notification, message)
            message.engine = self
            if not self._workers.submit(self._run_notification, message):
                log.debug("notification %r dropped: the engine closed while it waited", message)
        # Heartbeat and Disconnect concern the transport, which acts on them before they get here.

    def _run_request(self, request: Request) -> None:
        """Call the handler for ``request`` and send exactly one answer."""
        if self.closed:
            # Its connection is gone for good: the answer could not be sent, so the work is not done.
            log.debug("request %r (id %d) not started: the transport ended", request.method, request.message_id)
            return
        try:
            result = self.rpc_handler(request)
            # The id is taken only once the handler has returned: ids must reach the wire in
            # increasing order (a session transport drops a lower id as a duplicate), and the
            # handler may yield while other messages are numbered and sent.
            reply: Response | Error = Response(self.next_message_id(), request.message_id, result)
        except MethodNotFound as exc:
            reply = Error(self.next_message_id(), request.message_id, _method_not_found_data(exc))
        except RequestException as exc:
            reply = Error(self.next_message_id(), request.message_id, exc.data)
        except Exception:
            log.exception("handler for request %r (id %d) raised", request.method, request.message_id)
            reply = Error(self.next_message_id(), request.message_id, error_data("internal_error", "internal error"))
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
        sent); idle workers exit.
        """
        if self.closed:
            return
        self.closed = True
        self.fail_pending(str(reason) if reason is not None else "connection lost")
        if self._deadlines is not None and not self._deadlines.waiting:
            self._deadlines.close()
        self._workers.close()
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("close callback %r raised", callback)

    def fail_pending(self, reason: str) -> int:
        """Fail every pending request with ConnectionLost(reason), keep the engine open; return how many."""
        pending, self._pending = self._pending, {}
        for request in pending.values():
            request.set_response(ConnectionLost(reason))
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
        """Number of inbound requests and notifications being handled now."""
        return self._workers.busy

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Engine {state} pending={len(self._pending)} transport={self.transport!r}>"


def _method_not_found_data(exc: MethodNotFound) -> dict[str, Any]:
    """Return the Error data sent for an unknown method."""
    return error_data("method_not_found", f"method not found: {exc.method_name}", method=exc.method_name)
