"""A bounded pool of long-lived worker greenlets that fans out only when a job blocks.

Spawning a greenlet per inbound message costs several times more than
handing a job to a greenlet that already waits for one, and waking a
greenlet per job costs a switch each. So workers live on: an idle one parks
in a lot shared by every pool of its thread (an idle connection keeps no
worker of its own), and a pool with jobs wakes a parked one, up to ``size``
at once; a woken worker runs queued jobs one after another for as long as
they do not block. When a job does block (yields to the hub) while
others wait, a callback scheduled before it started wakes one more worker,
which takes the next job; so a slow or blocking handler never holds up the
jobs behind it, and a burst of fast ones costs one switch, not one per job.

:meth:`WorkerPool.submit` blocks while ``size`` jobs are in flight (queued
or running): a transport that submits from its reading greenlet stops
reading, and the peer feels backpressure instead of this process growing
its memory.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import gevent
from gevent.event import Event
from gevent.hub import Waiter

__all__ = ["WorkerPool", "end_idle_workers"]

log = logging.getLogger(__name__)

_STOP = object()

Job = tuple[Callable[[Any], object], Any]
_T = TypeVar("_T")

#: Idle workers parked per thread, at most; one more than that ends instead of parking.
MAX_PARKED = 1024
#: A worker parked this long without work ends (after a burst, the lot shrinks back).
IDLE_WORKER_SECONDS = 2.0


class _ParkingLot:
    """The idle workers of one thread, shared by all its pools: the most recently parked is woken first.

    A timer, every ``IDLE_WORKER_SECONDS / 2`` while anyone is parked (and
    not keeping the hub's loop alive), ends those parked longer than
    ``IDLE_WORKER_SECONDS``.
    """

    def __init__(self) -> None:
        self._loop = gevent.get_hub().loop
        self._parked: list[tuple[Waiter[Any], float]] = []
        self._sweeper: Any = None

    def __len__(self) -> int:
        return len(self._parked)

    def park(self, waiter: Waiter[Any]) -> None:
        """Add a waiting worker (it waits on ``waiter`` for its next pool, or ``_STOP``)."""
        self._parked.append((waiter, time.monotonic()))
        if self._sweeper is None:
            period = IDLE_WORKER_SECONDS / 2
            sweeper: Any = self._loop.timer(period, period)
            sweeper.start(self._sweep)
            sweeper.ref = False
            self._sweeper = sweeper

    def take(self) -> Waiter[Any] | None:
        """Remove and return the most recently parked worker's waiter (None if nobody is parked)."""
        parked = self._parked
        return parked.pop()[0] if parked else None

    def end_all(self) -> int:
        """End every parked worker now (its thread's hub is about to go); return how many. Does not block."""
        parked, self._parked = self._parked, []
        for waiter, _ in parked:
            self._loop.run_callback(waiter.switch, _STOP)
        if self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None
        return len(parked)

    def _sweep(self) -> None:
        """Timer callback (in the hub): end the workers parked too long; stop once nobody is parked."""
        parked = self._parked
        oldest = time.monotonic() - IDLE_WORKER_SECONDS
        expired = 0
        while expired < len(parked) and parked[expired][1] < oldest:
            expired += 1
        stopped, self._parked = parked[:expired], parked[expired:]
        for waiter, _ in stopped:
            waiter.switch(_STOP)
        if not self._parked and self._sweeper is not None:
            self._sweeper.stop()
            self._sweeper = None


# The parking lot of each thread's hub (weakly: a hub goes with its thread).
_LOTS: weakref.WeakKeyDictionary[Any, _ParkingLot] = weakref.WeakKeyDictionary()


def _parking_lot() -> _ParkingLot:
    """Return this thread's lot of idle workers, shared by all its pools."""
    hub = gevent.get_hub()
    lot = _LOTS.get(hub)
    if lot is None:
        lot = _LOTS[hub] = _ParkingLot()
    return lot


def end_idle_workers() -> int:
    """End the idle workers parked in the calling thread's lot; return how many (before its hub is destroyed).

    Does not block: each ends the next time the hub runs it.
    """
    lot = _LOTS.get(gevent.get_hub())
    return 0 if lot is None else lot.end_all()


def _worker(pool: WorkerPool) -> None:
    """A worker greenlet: serve ``pool``'s queued jobs, park, serve whichever pool wakes it next."""
    lot = pool._lot
    current = gevent.getcurrent()
    while True:
        pool._serve(current)
        if len(lot) >= MAX_PARKED:
            return
        waiter: Waiter[Any] = Waiter()
        lot.park(waiter)
        woken_by = waiter.get()  # a parked worker keeps no pool, job or request alive
        if woken_by is _STOP:
            return
        pool = woken_by


class WorkerPool:
    """Run jobs, in order of submission, on at most ``size`` long-lived greenlets."""

    def __init__(self, size: int = 64, name: str = "rpcengine-worker") -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self.name = name
        # Jobs that may still be submitted before submit() blocks (a plain count: no lock object
        # on the per-message path); waiters for a free slot, or for all of them, wait on events.
        self._free = size
        self._room: Event | None = None
        self._idle: Event | None = None
        self._jobs: list[Job] = []  # at most ``size``; a list costs 700 bytes less than a deque
        self._lot = _parking_lot()
        # The workers running this pool's jobs now, and the most there have been at once.
        self._workers: set[Any] = set()
        self._peak = 0
        # Workers woken (or spawned) that have not yet started taking jobs.
        self._woken = 0
        self._fan_out_scheduled = False
        self._waiting = 0
        self._closed = False
        self._loop = gevent.get_hub().loop

    @property
    def busy(self) -> int:
        """Number of jobs submitted and not yet finished (queued or running)."""
        return self.size - self._free

    @property
    def full(self) -> bool:
        """Whether :meth:`submit` would block now: ``size`` jobs are in flight."""
        return self._free <= 0

    @property
    def workers(self) -> int:
        """The most worker greenlets that have run this pool's jobs at once."""
        return self._peak

    def submit(self, func: Callable[[_T], object], arg: _T) -> bool:
        """Run ``func(arg)`` on a worker; blocks (yielding to the hub) while ``size`` jobs are in flight.

        ``func`` must handle its own exceptions; one that escapes is logged.
        Returns False, running nothing, if the pool is or gets closed meanwhile.
        """
        if self._closed:
            return False
        if self._free <= 0 and not self._wait_for_slot():
            return False
        self._free -= 1
        self._jobs.append((func, arg))
        if self._woken == 0:
            self._wake_one()
        return True

    def withdraw(self, func: Callable[[_T], object], arg: _T) -> bool:
        """Take back the job ``func(arg)`` if it still waits for a worker (it never runs then); return whether it did.

        Does not block; its slot is free at once.
        """
        jobs = self._jobs
        for index, (queued_func, queued_arg) in enumerate(jobs):
            if queued_arg is arg and queued_func == func:
                del jobs[index]
                self._release()
                return True
        return False

    def _wait_for_slot(self) -> bool:
        """Block (yielding) until a slot is free; return False if the pool closed meanwhile."""
        self._waiting += 1
        try:
            while self._free <= 0 and not self._closed:
                room = self._room
                if room is None:
                    room = self._room = Event()
                room.wait()
        finally:
            self._waiting -= 1
        return not self._closed

    def _release(self) -> None:
        """A job finished: free its slot, and wake whoever waits for one (or for all)."""
        self._free += 1
        room = self._room
        if room is not None:
            self._room = None
            room.set()
        idle = self._idle
        if idle is not None and self._free >= self.size:
            self._idle = None
            idle.set()

    def _wake_one(self) -> None:
        """Make one more worker come for the queued jobs: a parked one, else a new one."""
        waiter = self._lot.take()
        if waiter is not None:
            self._woken += 1
            self._loop.run_callback(waiter.switch, self)
        elif len(self._workers) + self._woken < self.size:
            self._woken += 1
            worker = gevent.Greenlet(_worker, self)
            worker.name = self.name
            worker.start()

    def _fan_out(self) -> None:
        """Hub callback: a worker yielded while jobs wait; wake another unless one is coming."""
        self._fan_out_scheduled = False
        if self._jobs and self._woken == 0:
            self._wake_one()

    def _serve(self, worker: Any) -> None:
        """Run queued jobs on ``worker`` (the calling greenlet) while there are any."""
        self._woken -= 1
        jobs = self._jobs
        workers = self._workers
        workers.add(worker)
        if len(workers) > self._peak:
            self._peak = len(workers)
        try:
            while jobs:
                func, arg = jobs.pop(0)
                if jobs and not self._fan_out_scheduled:
                    # Runs only once this worker yields: if the job blocks, the rest go on elsewhere.
                    self._fan_out_scheduled = True
                    self._loop.run_callback(self._fan_out)
                try:
                    func(arg)
                except Exception:
                    log.exception("job %r raised", func)
                finally:
                    self._release()
                    del func, arg
        finally:
            workers.discard(worker)

    def join(self, timeout: float | None = None) -> bool:
        """Wait (yielding) until no job is in flight; return False if ``timeout`` passed first."""
        # False makes the timeout silent, as gevent documents; types-gevent omits it.
        with gevent.Timeout(timeout, False):  # type: ignore[arg-type]
            while self._free < self.size:
                idle = self._idle
                if idle is None:
                    idle = self._idle = Event()
                idle.wait()
        return self._free >= self.size

    def close(self) -> None:
        """Refuse new jobs and wake blocked submitters; jobs already submitted still run.

        A message received before its connection closed is still handled,
        as data sent before a FIN is still read. A worker is woken, if
        needed, to run what is queued; idle ones are the thread's, not the pool's.
        """
        if self._closed:
            return
        self._closed = True
        room, self._room = self._room, None
        if room is not None:
            room.set()  # blocked submitters see the pool closed and return False
        if self._jobs and self._woken == 0:
            self._wake_one()

    def kill(self) -> None:
        """Close the pool and kill every worker, running jobs included (does not block)."""
        self.close()
        for worker in list(self._workers):
            worker.kill(block=False)
