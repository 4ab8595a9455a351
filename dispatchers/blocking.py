"""Handlers that must block a thread: ``@blocking`` runs them in a bounded thread pool, off the hub.

A handler that computes for long, or calls C code that does not yield
(a blocking driver, ``hashlib`` on large data, ``time.sleep``), would stall
the hub and every connection with it. Marked ``@blocking``, the dispatcher
runs it in gevent's thread pool of this hub instead, and the worker
greenlet waits (yielding) for the result::

    class Service:
        @blocking
        def rpc_digest(self, request):
            return hashlib.sha256(request.data.encode()).hexdigest()

At most ``threads`` handlers run in threads at once (:func:`blocking_pool`,
8 by default, per hub); more wait for a thread. Such a handler runs in
another OS thread: it must not touch the engine directly
(``request.engine.request`` raises WrongThread there); ``submit`` works. A
cancelled or timed-out call stops waiting for the thread at once, but the
thread finishes the function (Python cannot stop a thread).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import gevent
from gevent.threadpool import ThreadPool

from rpcengine.engine import RpcHandler
from rpcengine.messages import Notification, Request

__all__ = [
    "DEFAULT_BLOCKING_THREADS",
    "REGISTERED_MARKER",
    "BlockingHandler",
    "blocking",
    "blocking_pool",
    "is_blocking",
]

#: Threads a hub's pool for ``@blocking`` handlers has, unless :func:`blocking_pool` says otherwise.
DEFAULT_BLOCKING_THREADS = 8

_MARKER = "__rpcengine_blocking__"

F = TypeVar("F", bound=Callable[..., Any])

_POOLS: weakref.WeakKeyDictionary[Any, ThreadPool] = weakref.WeakKeyDictionary()


#: Set by Registry on the functions it registered (a mark added later would go unseen).
REGISTERED_MARKER = "__rpcengine_registered__"


def blocking(func: F) -> F:
    """Mark a handler (a function or an ``rpc_`` method) to run in the hub's thread pool; return it unchanged.

    Raises TypeError for a function a :class:`~dispatchers.Registry` already
    registered (``@blocking`` above ``@registry.register``): apply it below.
    """
    if getattr(func, REGISTERED_MARKER, False):
        raise TypeError(f"{func!r} is already registered: put @blocking below @registry.register")
    setattr(func, _MARKER, True)
    return func


def is_blocking(func: object) -> bool:
    """Whether ``func`` (or the function of a bound method) is marked with :func:`blocking`."""
    return getattr(func, _MARKER, False) is True


def blocking_pool(threads: int | None = None) -> ThreadPool:
    """Return the calling hub's pool for ``@blocking`` handlers; with ``threads``, resize it to that bound.

    Does not block. Raises ValueError for fewer than one thread.
    """
    if threads is not None and threads < 1:
        raise ValueError("a blocking pool needs at least one thread")
    hub = gevent.get_hub()
    pool = _POOLS.get(hub)
    if pool is None:
        pool = _POOLS[hub] = ThreadPool(threads or DEFAULT_BLOCKING_THREADS, hub=hub)
    elif threads is not None:
        pool.maxsize = threads
    return pool


class BlockingHandler:
    """An rpc handler that runs ``handler`` in the hub's :func:`blocking_pool` and waits (yielding) for it."""

    def __init__(self, handler: RpcHandler) -> None:
        self.handler = handler
        # The wrapped handler's description (params, doc) stays visible to introspection.
        self.__wrapped__ = handler

    def __call__(self, request: Request | Notification) -> Any:
        """Run the handler in a thread; blocks (yields) until it returns; raises what it raised."""
        return blocking_pool().apply(self.handler, (request,))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handler, name)

    def __repr__(self) -> str:
        return f"<BlockingHandler {self.handler!r}>"
