"""HubThread: a gevent hub in a background OS thread, for threaded and asyncio programs.

A program whose own code runs in plain threads or in an asyncio loop keeps
its rpcengine clients and servers on one HubThread::

    hub = HubThread().start()
    engine = hub.run(tcp.connect, "127.0.0.1", 7000)  # made on the hub's thread
    future = engine.submit("add", [1, 2])             # from any thread
    print(future.result(timeout=5))
    hub.stop()                                        # closes what it was told to, ends the thread
    hub.join(5)

Everything given to :meth:`HubThread.run` and :meth:`HubThread.spawn` runs in
a greenlet of that thread; an engine made there belongs to it (its
``submit``, ``submit_async`` and ``notify_threadsafe`` are the way in from
other threads). Nothing here monkey-patches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import gevent
from gevent.event import Event

from rpcengine.workers import end_idle_workers

__all__ = ["HubThread"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: How long :meth:`HubThread.stop` lets each closing callback and the remaining greenlets take.
STOP_TIMEOUT = 5.0


class HubThread:
    """Run a gevent hub in a daemon OS thread until :meth:`stop`; hand work to it from any thread."""

    def __init__(self, name: str = "rpcengine-hub") -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: Any = None
        self._stop: Event | None = None
        self._keepalive: Any = None
        self._greenlets: set[gevent.Greenlet[Any, Any]] = set()
        self._on_stop: list[Callable[[], object]] = []
        self._stopping = False
        self._failure: BaseException | None = None

    # -- starting and stopping --------------------------------------------

    def start(self, timeout: float = STOP_TIMEOUT) -> HubThread:
        """Start the thread and wait (blocking this thread) until its hub runs; return self.

        Raises RuntimeError if it is started twice or its hub does not come up within ``timeout``.
        """
        if self._thread is not None:
            raise RuntimeError("a HubThread starts once")
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the hub thread did not start within {timeout} s")
        if self._failure is not None:
            raise RuntimeError("the hub thread failed to start") from self._failure
        return self

    def _main(self) -> None:
        """The thread: make its hub, serve until stopped, close what was registered, tear the hub down."""
        try:
            hub = gevent.get_hub()
            stop = self._stop = Event()
            # A referenced watcher keeps the loop running while nothing else is scheduled; stop() fires it.
            keepalive = hub.loop.async_()
            keepalive.start(stop.set)
            self._keepalive = keepalive
            self._loop = hub.loop
        except BaseException as exc:  # reported to start()
            self._failure = exc
            self._ready.set()
            raise
        self._ready.set()
        try:
            stop.wait()
            keepalive.close()
            self._shut_down()
        finally:
            hub.destroy(destroy_loop=True)

    def _shut_down(self) -> None:
        """In the hub thread: run the stop callbacks (newest first), then kill what still runs (bounded)."""
        for callback in reversed(self._on_stop):
            try:
                with gevent.Timeout(STOP_TIMEOUT):
                    callback()
            except gevent.Timeout:
                log.error("stop callback %r took more than %s s", callback, STOP_TIMEOUT)
            except Exception:
                log.exception("stop callback %r raised", callback)
        if self._greenlets:
            gevent.killall(list(self._greenlets), timeout=STOP_TIMEOUT)
        end_idle_workers()
        gevent.sleep(0)  # let them end before the hub goes

    def stop(self) -> None:
        """Ask the thread to end, from any thread; does not block (see :meth:`join`).

        The thread runs the callbacks given to :meth:`on_stop` (each bounded to
        ``STOP_TIMEOUT`` seconds), kills greenlets :meth:`spawn` and :meth:`run`
        started that still run, and ends. Idempotent.
        """
        if self._stopping or self._loop is None:
            return
        self._stopping = True
        self._keepalive.send()  # thread-safe: wakes the loop, which sets the stop event

    def join(self, timeout: float | None = None) -> bool:
        """Wait (blocking this thread) for the thread to end; return whether it did within ``timeout``."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """Whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> HubThread:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self.join(2 * STOP_TIMEOUT)

    # -- handing work over -------------------------------------------------

    def spawn(self, func: Callable[..., _T], *args: Any, **kwargs: Any) -> Future[_T]:
        """Run ``func(*args, **kwargs)`` in a new greenlet of the hub's thread; return a future of its result.

        Does not block. Raises RuntimeError if the thread is not running.
        """
        if self._loop is None or self._stopping or not self.alive:
            raise RuntimeError("the hub thread is not running")
        future: Future[_T] = Future()
        self._loop.run_callback_threadsafe(self._start, future, func, args, kwargs)
        return future

    def run(self, func: Callable[..., _T], *args: Any, timeout: float | None = None, **kwargs: Any) -> _T:
        """Run ``func(*args, **kwargs)`` on the hub's thread and wait (blocking this thread) for its result.

        Raises what ``func`` raised, and ``concurrent.futures.TimeoutError``
        after ``timeout`` seconds (the greenlet goes on). Never call it from
        the hub's own thread: that would wait for itself.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("HubThread.run called from the hub's own thread; call func directly")
        return self.spawn(func, *args, **kwargs).result(timeout)

    def on_stop(self, callback: Callable[[], object]) -> None:
        """Have :meth:`stop` call ``callback()`` on the hub's thread (a server's ``close``, an engine's ``close``)."""
        self._on_stop.append(callback)

    def _start(self, future: Future[Any], func: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> None:
        """Hub callback: start the greenlet for :meth:`spawn`."""
        if not future.set_running_or_notify_cancel():
            return
        greenlet = gevent.Greenlet(_run_into, future, func, args, kwargs)
        self._greenlets.add(greenlet)
        greenlet.link(self._greenlets.discard)
        greenlet.start()


def _run_into(future: Future[Any], func: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> None:
    """Run ``func`` and put its result (or what it raised) into ``future``."""
    try:
        result = func(*args, **kwargs)
    except BaseException as exc:
        future.set_exception(exc)
        if not isinstance(exc, Exception):
            raise  # GreenletExit and friends end the greenlet as they should
    else:
        future.set_result(result)
