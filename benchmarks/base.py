"""What every benchmarked system provides, and the payloads of the scenarios.

A system is used inside the worker processes only (never by the
orchestrator): the server worker calls :meth:`System.start_server`, the
client worker calls :meth:`System.connect` and drives the returned
:class:`Conn` objects.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import Any, Protocol

#: Scenario A and B payload.
SMALL_PAYLOAD: dict[str, Any] = {"n": 1, "text": "hello"}
#: Size of the scenario C payload (a str of this many ASCII characters).
LARGE_PAYLOAD_SIZE = 64 * 1024
#: Every request waits at most this long for its answer.
CALL_TIMEOUT = 10.0
#: Number of open files asked for in each worker process (scenario D needs > 2,000).
NOFILE_LIMIT = 8192


def large_payload() -> str:
    """Return the 64 KiB string echoed in scenario C."""
    return ("abcdefghijklmnopqrstuvwxyz0123456789" * (LARGE_PAYLOAD_SIZE // 36 + 1))[:LARGE_PAYLOAD_SIZE]


def raise_nofile_limit(wanted: int = NOFILE_LIMIT) -> int:
    """Raise RLIMIT_NOFILE to at least ``wanted`` if allowed; return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            wanted = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


class Conn(Protocol):
    """One client connection, usable by many greenlets at once where the system allows it."""

    def call(self, data: Any, method: str = "echo") -> Any:
        """Call ``method`` with ``data`` on the server and return the answer's data."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class System:
    """Base class of a benchmarked system; subclasses override what they need.

    ``scenarios`` lists the scenarios (A-D) it runs; ``in_process`` means the
    "server" lives in the client process (no server worker is started);
    ``shared_b_connection`` is False for systems that cannot pipeline, whose
    scenario B then opens one connection per caller; ``memory`` tells whether
    the memory measurements apply.
    """

    name = "?"
    description = ""
    scenarios: tuple[str, ...] = ("A", "B", "C", "D")
    in_process = False
    shared_b_connection = True
    memory = False

    def unavailable(self) -> str | None:
        """Return why this system cannot run here (a missing import...), or None."""
        return None

    def start_server(self) -> tuple[int, Callable[[], None]]:
        """Start the echo server on 127.0.0.1; return its port and a function that stops it."""
        raise NotImplementedError

    def connect(self, port: int, scenario: str) -> Conn:
        """Open one client connection to the server on ``port`` for ``scenario``."""
        raise NotImplementedError


def cpu_seconds() -> float:
    """Return this process's user + system CPU time in seconds (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
