"""The service every reliability test serves: one method per behaviour a fault needs.

Kept free of pytest so that the subprocess peers (``peer.py``) import it too.
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from gevent.event import Event

from rpcengine import RequestException


class Service:
    """Methods for echoing, blocking, failing and returning unencodable values."""

    def __init__(self) -> None:
        #: Set to let every ``wait`` call return.
        self.release = Event()
        #: Calls that entered ``wait`` and have not returned.
        self.waiting = 0
        self.calls = 0
        #: How often the ``counted`` property was evaluated (it never should be).
        self.property_reads = 0
        #: Not callable: dispatching to it must fail with MethodNotFound.
        self.rpc_constant = 42
        self._private_calls = 0

    def rpc_echo(self, request: Any) -> Any:
        """Return the request's data."""
        self.calls += 1
        return request.data

    def rpc_wait(self, request: Any) -> str:
        """Block (yielding) until :attr:`release` is set, or ``data`` seconds if a number."""
        self.waiting += 1
        try:
            timeout = request.data if isinstance(request.data, (int, float)) else None
            self.release.wait(timeout)
        finally:
            self.waiting -= 1
        return "released"

    def rpc_sleep(self, request: Any) -> Any:
        """Yield for ``data`` seconds (a short, cooperative block), then answer."""
        gevent.sleep(float(request.data or 0))
        return request.data

    def rpc_busy(self, request: Any) -> int:
        """Block the whole hub for ``data`` seconds (CPU-bound work, not cooperative)."""
        end = time.perf_counter() + float(request.data or 0)
        spins = 0
        while time.perf_counter() < end:
            spins += 1
        return spins

    def rpc_crash(self, request: Any) -> None:
        """Raise an unexpected exception."""
        raise ZeroDivisionError("handler crashed on purpose")

    def rpc_fail(self, request: Any) -> None:
        """Raise RequestException with the request's data."""
        raise RequestException({"error": "custom", "detail": request.data})

    def rpc_unencodable(self, request: Any) -> Any:
        """Return a value JSON cannot carry (a set, bytes, NaN or a tuple key), chosen by ``data``."""
        values = [{1, 2}, b"raw", float("nan"), {(1, 2): 3}, object()]
        index = request.data if isinstance(request.data, int) else 0
        return values[index % len(values)]

    def rpc_big(self, request: Any) -> str:
        """Return a string of ``data`` bytes."""
        return "x" * int(request.data or 0)

    def rpc_notify_back(self, request: Any) -> int:
        """Send ``data`` notifications back to the caller; return how many."""
        count = int(request.data or 0)
        for index in range(count):
            request.engine.notify("ping", index)
        return count

    @property
    def rpc_counted(self) -> int:
        """A property: a dispatcher must never evaluate it."""
        self.property_reads += 1
        return self.property_reads

    def _rpc_private(self, request: Any) -> None:
        """Private: never reachable."""
        self._private_calls += 1

    def rpc___class__(self, request: Any) -> None:
        """Dunder-looking name: never reachable."""
        self._private_calls += 1
