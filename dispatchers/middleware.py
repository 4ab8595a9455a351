"""Middleware: code that runs around every call a dispatcher handles.

A middleware is a callable ``middleware(request, call_next)`` that returns
the result, usually ``call_next(request)`` with work before and after.
:func:`with_middleware` wraps a handler in a chain of them::

    stats = CallStatistics()
    handler = with_middleware(MethodDispatcher(service), SlowCallLogger(0.5), stats)
    engine = Engine(transport, handler)
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from rpcengine.engine import RpcHandler
from rpcengine.errors import MethodNotFound, RequestException
from rpcengine.messages import Notification, Request

__all__ = ["CallStatistics", "MethodStats", "Middleware", "MushroomErrors", "SlowCallLogger", "with_middleware"]

#: ``middleware(request, call_next) -> result``
Middleware: TypeAlias = Callable[[Request | Notification, RpcHandler], Any]


def with_middleware(handler: RpcHandler, *middlewares: Middleware) -> RpcHandler:
    """Return an rpc handler that runs ``middlewares`` (first outermost) around ``handler``."""
    wrapped = handler
    for middleware in reversed(middlewares):
        wrapped = _link(middleware, wrapped)
    return wrapped


def _link(middleware: Middleware, call_next: RpcHandler) -> RpcHandler:
    """Return a handler that calls ``middleware`` with ``call_next`` (its ``__wrapped__``)."""

    def handle(request: Request | Notification) -> Any:
        return middleware(request, call_next)

    # Sets only ``__wrapped__``: the handler keeps its own name and docstring.
    return functools.update_wrapper(handle, call_next, assigned=(), updated=())


class SlowCallLogger:
    """Middleware that logs a warning for every call slower than ``threshold`` seconds."""

    def __init__(
        self,
        threshold: float = 1.0,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.threshold = threshold
        self.logger = logger or logging.getLogger("rpcengine.slow")
        self.clock = clock

    def __call__(self, request: Request | Notification, call_next: RpcHandler) -> Any:
        """Run the call and log it if it took longer than the threshold."""
        started = self.clock()
        try:
            return call_next(request)
        finally:
            elapsed = self.clock() - started
            if elapsed >= self.threshold:
                self.logger.warning(
                    "slow call %r took %.3f s (threshold %.3f s)", request.method, elapsed, self.threshold
                )


@dataclass
class MethodStats:
    """Counters for one method."""

    calls: int = 0
    errors: int = 0
    not_found: int = 0
    total_seconds: float = 0.0
    max_seconds: float = 0.0

    @property
    def mean_seconds(self) -> float:
        """Mean duration of a call, or 0.0 before the first one."""
        return self.total_seconds / self.calls if self.calls else 0.0


class CallStatistics:
    """Middleware that counts calls, errors and durations per method.

    Unknown methods are counted together under ``"<not found>"``, so a peer
    sending random names cannot grow the table.
    """

    NOT_FOUND = "<not found>"

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.methods: dict[str, MethodStats] = {}

    def __call__(self, request: Request | Notification, call_next: RpcHandler) -> Any:
        """Run the call and record its outcome and duration."""
        started = self.clock()
        key = request.method
        try:
            return call_next(request)
        except MethodNotFound:
            key = self.NOT_FOUND
            self._stats(key).not_found += 1
            raise
        except Exception:
            self._stats(key).errors += 1
            raise
        finally:
            elapsed = self.clock() - started
            stats = self._stats(key)
            stats.calls += 1
            stats.total_seconds += elapsed
            stats.max_seconds = max(stats.max_seconds, elapsed)

    def _stats(self, key: str) -> MethodStats:
        """Return the counters for ``key``, creating them on first use."""
        stats = self.methods.get(key)
        if stats is None:
            stats = self.methods[key] = MethodStats()
        return stats

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Return the counters as plain data, suitable for JSON."""
        return {
            name: {
                "calls": s.calls,
                "errors": s.errors,
                "not_found": s.not_found,
                "mean_seconds": s.mean_seconds,
                "max_seconds": s.max_seconds,
            }
            for name, s in sorted(self.methods.items())
        }


class MushroomErrors:
    """Answer failed calls with mushroom's error strings, for client code that compares them.

    An unknown method gets the Error data ``"rpc_<method>"`` (mushroom
    names the missing ``rpc_`` method), a handler that raises anything but
    :class:`~rpcengine.errors.RequestException` gets
    ``"Internal server error"`` (logged with its traceback). A
    RequestException's own data goes through unchanged. Use it as
    ``with_middleware(handler, MushroomErrors())``; it does not block.
    """

    def __call__(self, request: Request | Notification, call_next: RpcHandler) -> Any:
        """Return ``call_next(request)``; raise RequestException with mushroom's string if it fails."""
        try:
            return call_next(request)
        except MethodNotFound:
            if type(request) is Notification:
                raise
            raise RequestException(f"rpc_{request.method}") from None
        except RequestException:
            raise
        except Exception:
            if type(request) is Notification:
                raise
            logging.getLogger(__name__).exception("%s failed", request.method)
            raise RequestException("Internal server error") from None
