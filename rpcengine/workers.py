"""A bounded pool of long-lived worker greenlets.

Spawning a greenlet per inbound message costs several times more than
handing a job to a greenlet that already waits for one, so each Engine keeps
up to ``size`` workers alive and reuses them. :meth:`WorkerPool.submit`
blocks while ``size`` jobs are in flight: a transport that submits from its
reading greenlet stops reading, and the peer feels backpressure instead of
this process growing its memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
from gevent.lock import Semaphore
from gevent.queue import SimpleQueue

__all__ = ["WorkerPool"]

log = logging.getLogger(__name__)

_STOP = object()


class WorkerPool:
    """Run jobs on at most ``size`` long-lived greenlets."""

    def __init__(self, size: int = 64, name: str = "rpcengine-worker") -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self.name = name
        self._slots = Semaphore(size)
        self._jobs: SimpleQueue = SimpleQueue()
        self._workers: set[gevent.Greenlet] = set()
        self._idle = 0
        self._waiting = 0
        self._closed = False

    @property
    def busy(self) -> int:
        """Number of jobs submitted and not yet finished."""
        return self.size - self._slots.counter

    @property
    def workers(self) -> int:
        """Number of worker greenlets alive."""
        return len(self._workers)

    def submit(self, func: Callable[[Any], object], arg: Any) -> bool:
        """Run ``func(arg)`` on a worker; blocks (yielding to the hub) while the pool is full.

        ``func`` must handle its own exceptions; one that escapes is logged.
        Returns False, running nothing, if the pool is or gets closed meanwhile.
        """
        if self._closed:
            return False
        self._waiting += 1
        try:
            self._slots.acquire()
        finally:
            self._waiting -= 1
        if self._closed:
            self._slots.release()
            return False
        if self._idle == 0:
            worker = gevent.Greenlet(self._run)
            worker.name = self.name
            self._workers.add(worker)
            worker.start()
        else:
            self._idle -= 1
        self._jobs.put((func, arg))
        return True

    def _run(self) -> None:
        """Worker loop: take jobs until told to stop."""
        jobs, slots = self._jobs, self._slots
        try:
            while True:
                job = jobs.get()
                if job is _STOP:
                    return
                func, arg = job
                try:
                    func(arg)
                except Exception:
                    log.exception("job %r raised", func)
                finally:
                    slots.release()
                    func = arg = job = None
                if self._closed:
                    return
                self._idle += 1
        finally:
            self._workers.discard(gevent.getcurrent())  # type: ignore[arg-type]

    def join(self, timeout: float | None = None) -> bool:
        """Wait (yielding) until no job is in flight; return False if ``timeout`` passed first."""
        taken = 0
        try:
            with gevent.Timeout(timeout, False):
                while taken < self.size:
                    self._slots.acquire()
                    taken += 1
        finally:
            for _ in range(taken):
                self._slots.release()
        return taken == self.size

    def close(self) -> None:
        """Refuse new jobs, wake blocked submitters, let idle workers exit; running jobs finish."""
        if self._closed:
            return
        self._closed = True
        for _ in range(self._waiting):
            self._slots.release()
        for _ in range(self._idle):
            self._jobs.put(_STOP)
        self._idle = 0

    def kill(self) -> None:
        """Close the pool and kill every worker, running jobs included (does not block)."""
        self.close()
        for worker in list(self._workers):
            worker.kill(block=False)
