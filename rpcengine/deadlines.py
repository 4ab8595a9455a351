"""The timeouts of an engine's waiting requests, on one timer.

A gevent ``Timeout`` per request creates, starts, stops and closes a timer
watcher for every call. An engine instead keeps its waiting requests in one
first-in, first-out queue per timeout value: requests with the same timeout
expire in the order they were sent, so each queue is sorted by deadline
without any sorting, adding is an append, and a request answered at the
head of its queue (the usual case: answers come in order) leaves with one
``popleft``. One timer watcher fires at the earliest head's deadline (or a
little before it: it is not re-armed when the head leaves early; a firing
that finds nothing due just re-arms). Time is ``time.monotonic``; the timer
only says when to look, so a deadline never expires before it has passed.

The timer stays armed while nothing waits, but then it does not keep the
hub's loop alive (``ref`` false), so a program's ``gevent.wait()`` is not
held up by a timeout nobody is waiting for any more.

Nothing here blocks; the timer's callback runs in the hub and wakes each
expired caller through its :class:`gevent.hub.Waiter`.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

import gevent

if TYPE_CHECKING:
    from rpcengine.messages import Request

__all__ = ["Deadlines"]

_NEVER = float("inf")


class Deadlines:
    """Wake requests whose timeout passed; one timer for all of them (one instance per hub thread)."""

    def __init__(self) -> None:
        self._loop = gevent.get_hub().loop
        self._queues: dict[float, deque[Request]] = {}
        self._timer: Any = None
        self._armed_at = _NEVER
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Number of requests with a deadline that still wait."""
        return self._waiting

    def add(self, request: Request, timeout: float) -> None:
        """Make ``request`` (waiting on its ``_waiter``) time out ``timeout`` seconds from now."""
        deadline = time.monotonic() + timeout
        request._deadline = deadline
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        queue.append(request)
        self._waiting += 1
        if deadline < self._armed_at:
            self._arm(deadline)
        elif self._waiting == 1:
            self._timer.ref = True

    def remove(self, request: Request, timeout: float) -> None:
        """``request`` stopped waiting (answered, timed out, failed or killed); forget it."""
        self._waiting -= 1
        request._deadline = None
        queue = self._queues.get(timeout)
        if queue is None:
            return
        while queue and queue[0]._deadline is None:
            queue.popleft()
        if not queue:
            del self._queues[timeout]
        if self._waiting == 0 and self._timer is not None:
            self._timer.ref = False

    def _arm(self, deadline: float) -> None:
        """(Re)start the timer to fire at ``deadline``."""
        old = self._timer
        if old is not None:
            old.stop()
        timer: Any = self._loop.timer(max(0.0, deadline - time.monotonic()))
        self._timer = timer
        timer.start(self._fire)
        self._armed_at = deadline
        timer.ref = self._waiting > 0

    def _fire(self) -> None:
        """Timer callback (in the hub): wake every request whose deadline passed; re-arm for the next."""
        self._armed_at = _NEVER
        now = time.monotonic()
        expired: list[Request] = []
        earliest = _NEVER
        queues = self._queues
        for timeout in list(queues):
            queue = queues[timeout]
            while queue:
                request = queue[0]
                deadline = request._deadline
                if deadline is None:
                    queue.popleft()
                elif deadline <= now:
                    queue.popleft()
                    expired.append(request)
                else:
                    if deadline < earliest:
                        earliest = deadline
                    break
            if not queue:
                del queues[timeout]
        if earliest < _NEVER:
            self._arm(earliest)
        for request in expired:
            waiter = request._waiter
            if waiter is not None:
                request._waiter = None
                waiter.switch(None)

    def close(self) -> None:
        """Stop the timer (nothing waits any more)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()
        self._armed_at = _NEVER
