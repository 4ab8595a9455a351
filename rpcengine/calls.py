"""Call: the handle of one outbound request, returned by :meth:`Engine.call <rpcengine.engine.Engine.call>`.

A call ends exactly once, with one of: the peer's Response (its data is the
result), the peer's Error (:class:`~rpcengine.errors.RequestException`), its
timeout (:class:`~rpcengine.errors.RequestTimeout`), :meth:`Call.cancel`
(:class:`~rpcengine.errors.RequestCancelled`) or the end of the transport
(:class:`~rpcengine.errors.ConnectionLost`). Whoever waits in :meth:`Call.get`
is woken then, and each done callback runs once, in the hub.

A Call belongs to the engine's hub thread: use it from greenlets of that
thread (other threads use :meth:`Engine.submit <rpcengine.engine.Engine.submit>`,
which returns a ``concurrent.futures.Future``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gevent.event import Event
from gevent.hub import Waiter

from rpcengine.errors import ConnectionLost, RequestException, RequestTimeout
from rpcengine.messages import Error, Request, Response

if TYPE_CHECKING:
    from rpcengine.engine import Engine

__all__ = ["Call"]

log = logging.getLogger(__name__)

_GAVE_UP = object()


class Call:
    """The handle of one request this side sent: wait for it, look at it, call back on it, cancel it.

    ``message_id`` is the request's id, ``method`` its method, ``request`` the
    :class:`~rpcengine.messages.Request` sent (its seed API
    ``get_response()`` works too), ``timeout`` the seconds it may take
    (None: no limit).
    """

    __slots__ = (
        "_callbacks",
        "_deadline",
        "_engine",
        "_event",
        "_outcome",
        "_waiter",
        "message_id",
        "request",
        "timeout",
    )

    def __init__(self, engine: Engine, request: Request, timeout: float | None) -> None:
        self._engine = engine
        self.request = request
        self.message_id = request.message_id
        self.timeout = timeout
        # The Response, the Error, or the exception it ended with; None while it runs.
        self._outcome: Any = None
        self._waiter: Waiter[Any] | None = None
        self._event: Event | None = None
        self._callbacks: list[Callable[[Call], object]] | None = None
        # When it times out (time.monotonic), while it waits in the engine's Deadlines.
        self._deadline: float | None = None

    @property
    def method(self) -> str:
        """The method called."""
        return self.request.method

    # -- looking ----------------------------------------------------------

    def ready(self) -> bool:
        """Whether the call has ended (answered, failed, timed out, cancelled or lost). Does not block."""
        return self._outcome is not None

    def get(self, timeout: float | None = None) -> Any:
        """Wait (yielding to the hub) for the call to end; return the answer's data.

        Raises :class:`~rpcengine.errors.RequestException` (the peer's Error),
        :class:`~rpcengine.errors.RequestTimeout` (the call's timeout, or the
        peer's ``deadline_exceeded`` Error, which says the same),
        :class:`~rpcengine.errors.RequestCancelled` or
        :class:`~rpcengine.errors.ConnectionLost`, as
        :meth:`Engine.request <rpcengine.engine.Engine.request>` does. With
        ``timeout``, waits at most that long and then raises RequestTimeout
        while the call itself goes on (its own timeout still applies).
        """
        outcome = self._outcome
        if outcome is None:
            if timeout is None and self._waiter is None:
                # The usual wait (Engine.request), inline: one Waiter, woken by _finish.
                waiter: Waiter[Any] = Waiter()
                self._waiter = waiter
                try:
                    waiter.get()
                finally:
                    if self._waiter is waiter:
                        self._waiter = None
            else:
                self._wait(timeout)
            outcome = self._outcome
            if outcome is None:
                raise RequestTimeout(f"no answer to {self.method!r} (id {self.message_id}) yet after {timeout} s")
        kind = type(outcome)
        if kind is Response:
            return outcome.data
        if kind is Error:
            data = outcome.data
            if type(data) is dict and data.get("error") == "deadline_exceeded":
                # The peer saw the deadline pass a moment before this side's timer did: the same timeout.
                raise RequestTimeout(f"no answer to {self.method!r} (id {self.message_id}) within {self.timeout} s")
            raise RequestException(data)
        raise outcome.with_traceback(None)

    def result(self) -> Any:
        """Return the answer's data of a call that has ended (raising as :meth:`get` does); never blocks.

        Raises RequestTimeout if it has not ended yet (as the seed's
        ``get_response(block=False)`` does).
        """
        if self._outcome is None:
            raise RequestTimeout(f"no answer to {self.method!r} (id {self.message_id}) yet")
        return self.get()

    def exception(self) -> BaseException | None:
        """Return what :meth:`result` would raise, or None if the call succeeded; never blocks.

        Raises RequestTimeout if it has not ended yet.
        """
        try:
            self.result()
        except RequestTimeout as exc:
            if self._outcome is None:
                raise
            return exc
        except Exception as exc:  # the outcome itself, returned rather than raised
            return exc
        return None

    @property
    def outcome(self) -> Any:
        """The Response, the Error, or the exception the call ended with; None while it runs."""
        return self._outcome

    # -- acting -----------------------------------------------------------

    def add_done_callback(self, fn: Callable[[Call], object]) -> None:
        """Call ``fn(call)`` once the call has ended: in the hub, exactly once, soon if it has already.

        ``fn`` runs in the hub's loop, so it must not block (a gevent
        ``BlockingSwitchOutError`` says so if it tries); what it raises is logged.
        """
        if self._outcome is not None:
            self._engine._loop.run_callback(_run_callback, fn, self)
            return
        callbacks = self._callbacks
        if callbacks is None:
            self._callbacks = [fn]
        else:
            callbacks.append(fn)

    def cancel(self) -> bool:
        """End the call now with RequestCancelled; tell the peer (Cancel) if it takes it; return whether it ran.

        Does not block. A late answer is dropped. False if the call had
        ended already (nothing changes then).
        """
        return self._engine._cancel_call(self)

    # -- the engine's side ------------------------------------------------

    def _wait(self, timeout: float | None) -> None:
        """Block (yielding) until the call ends, or ``timeout`` passed."""
        if self._waiter is not None:
            # A second greenlet waits for the same call: it waits on an Event.
            event = self._event
            if event is None:
                event = self._event = Event()
            event.wait(timeout)
            return
        waiter: Waiter[Any] = Waiter()
        self._waiter = waiter
        timer = None
        if timeout is not None:
            timer = self._engine._loop.timer(max(0.0, timeout))
            timer.start(waiter.switch, _GAVE_UP)
        try:
            waiter.get()
        finally:
            if self._waiter is waiter:
                self._waiter = None
            if timer is not None:
                timer.close()

    def _finish(self, outcome: Any) -> bool:
        """End the call with ``outcome`` (engine bookkeeping done by the caller); return False if it had ended."""
        if self._outcome is not None:
            return False
        self._outcome = outcome
        kind = type(outcome)
        request = self.request
        if kind is Response or kind is Error or kind is ConnectionLost:
            request.response = outcome
        if request._event is not None:
            request._event.set()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            self._engine._loop.run_callback(waiter.switch, None)
        if self._event is not None:
            self._event.set()
        callbacks = self._callbacks
        if callbacks is not None:
            self._callbacks = None
            run_callback = self._engine._loop.run_callback
            for fn in callbacks:
                run_callback(_run_callback, fn, self)
        return True

    def __repr__(self) -> str:
        state = "running" if self._outcome is None else f"ended with {type(self._outcome).__name__}"
        return f"<Call {self.method!r} id={self.message_id} {state}>"


def _run_callback(fn: Callable[[Call], object], call: Call) -> None:
    """Run one done callback (in the hub), logging what it raises."""
    try:
        fn(call)
    except Exception:
        log.exception("done callback %r of %r raised", fn, call)
