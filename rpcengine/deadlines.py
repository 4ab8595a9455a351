"""The timeouts of an engine's calls (and the deadlines of the requests it runs), on one timer.

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

Nothing here blocks; the timer's callback runs in the hub and hands each
expired item to the ``expired`` callback given at construction (which must
not block either). An item is any object with a ``_deadline`` attribute.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent

__all__ = ["Deadlines"]

_NEVER = float("inf")


class Deadlines:
    """Call ``expired(item)`` (in the hub) for each item whose deadline passed; one timer for all of them."""

    def __init__(self, expired: Callable[[Any], object]) -> None:
        self._loop = gevent.get_hub().loop
        self._expired = expired
        self._queues: dict[float, deque[Any]] = {}
        self._timer: Any = None
        self._armed_at = _NEVER
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Number of items with a deadline that has not passed yet."""
        return self._waiting

    def add(self, item: Any, timeout: float, deadline: float | None = None) -> None:
        """Make ``item`` expire ``timeout`` seconds from now (or at ``deadline``, which is that far from when it began).

        Items added with the same ``timeout`` must be added in the order of their deadlines.
        """
        if deadline is None:
            deadline = time.monotonic() + timeout
        item._deadline = deadline
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        queue.append(item)
        self._waiting += 1
        if deadline < self._armed_at:
            self._arm(deadline)
        elif self._waiting == 1:
            self._timer.ref = True

    def remove(self, item: Any, timeout: float) -> None:
        """``item`` ended before its deadline (answered, failed, cancelled); forget it."""
        self._waiting -= 1
        item._deadline = None
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
        """Timer callback (in the hub): expire every item whose deadline passed; re-arm for the next."""
        self._armed_at = _NEVER
        now = time.monotonic()
        expired: list[Any] = []
        earliest = _NEVER
        queues = self._queues
        for timeout in list(queues):
            queue = queues[timeout]
            while queue:
                item = queue[0]
                deadline = item._deadline
                if deadline is None:
                    queue.popleft()
                elif deadline <= now:
                    queue.popleft()
                    item._deadline = None
                    self._waiting -= 1
                    expired.append(item)
                else:
                    if deadline < earliest:
                        earliest = deadline
                    break
            if not queue:
                del queues[timeout]
        if earliest < _NEVER:
            self._arm(earliest)
        if self._waiting == 0 and self._timer is not None:
            self._timer.ref = False
        callback = self._expired
        for item in expired:
            callback(item)

    def close(self) -> None:
        """Stop the timer (nothing waits any more)."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()
        self._armed_at = _NEVER
