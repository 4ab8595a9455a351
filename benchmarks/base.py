"""What every benchmarked system provides, and the payloads of the scenarios.

A system is used inside the worker processes only (never by the
orchestrator): the server worker calls :meth:`System.start_server`, the
client worker calls :meth:`System.connect` and drives the returned
:class:`Conn` objects.
"""

from __future__ import annotations

import os
import resource
import tempfile
from collections.abc import Callable
from typing import Any, Protocol

#: Scenario A, B, Bpool, D, S and S8 payload (the one of issue #11).
SMALL_PAYLOAD: dict[str, Any] = {"x": 1, "s": "hello"}
#: Size of the scenario C1 payload (a str of this many ASCII characters).
LARGE_PAYLOAD_SIZE = 64 * 1024
#: Number of small dicts in the scenario C payload.
STRUCTURED_ITEMS = 606
#: Length of each dict's ``note`` string, chosen so that the compact JSON of the list is about 64 KiB.
STRUCTURED_NOTE = 68
#: Every scenario, in the order of the report and of each round.
SCENARIOS = ("A", "S", "S8", "B", "Bpool", "C", "C1", "D")
#: The scenarios whose calls come from plain OS threads through ``Engine.submit`` -> the number of threads.
THREAD_SCENARIOS = {"S": 1, "S8": 8}
#: Every request waits at most this long for its answer.
CALL_TIMEOUT = 10.0
#: Number of open files asked for in each worker process (scenario D needs > 2,000).
NOFILE_LIMIT = 8192


def large_payload() -> str:
    """Return the 64 KiB string echoed in scenario C1."""
    return ("abcdefghijklmnopqrstuvwxyz0123456789" * (LARGE_PAYLOAD_SIZE // 36 + 1))[:LARGE_PAYLOAD_SIZE]


def structured_payload() -> list[dict[str, Any]]:
    """Return the list of 606 small dicts echoed in scenario C (65,339 bytes of compact JSON).

    Deterministic: item ``i`` is ``{"id": i, "name": "item-000i", "note": <68 characters>}``,
    three keys each, so a round trip meets 1,818 keys plus the message's own.
    """
    letters = "abcdefghijklmnopqrstuvwxyz" * 4
    return [
        {"id": i, "name": f"item-{i:04d}", "note": (f"n{i}-" + letters)[:STRUCTURED_NOTE]}
        for i in range(STRUCTURED_ITEMS)
    ]


def payload_for(scenario: str) -> Any:
    """Return the echoed payload of ``scenario``: C the 606 dicts, C1 the 64 KiB string, else the small dict."""
    if scenario == "C":
        return structured_payload()
    if scenario == "C1":
        return large_payload()
    return SMALL_PAYLOAD


def same_data(a: Any, b: Any) -> bool:
    """Compare echoed data, taking tuples for lists (mprpc decodes arrays as tuples)."""
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(same_data(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_data(a[k], b[k]) for k in a)
    return bool(a == b) and type(a) is type(b)


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


def unix_socket_path(system: str, key: int) -> str:
    """Return the socket path of ``system``'s Unix-socket server number ``key`` (its process id).

    A Unix-socket system's :meth:`System.start_server` returns ``key`` where
    a TCP one returns its port, and :meth:`System.connect` gets it back.
    """
    return os.path.join(tempfile.gettempdir(), f"rpcengine-bench-{system}-{key}.sock")


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

    ``scenarios`` lists the scenarios (see :data:`SCENARIOS`) it runs;
    ``in_process`` means the "server" lives in the client process (no server
    worker is started); ``memory`` tells whether the memory measurements apply.
    """

    name = "?"
    description = ""
    scenarios: tuple[str, ...] = ("A", "B", "C", "C1", "D")
    in_process = False
    memory = False

    def unavailable(self) -> str | None:
        """Return why this system cannot run here (a missing import...), or None."""
        return None

    def start_server(self) -> tuple[int, Callable[[], None]]:
        """Start the echo server on 127.0.0.1; return its port and a function that stops it.

        A Unix-socket system returns the key of its path instead (see :func:`unix_socket_path`).
        """
        raise NotImplementedError

    def connect(self, port: int, scenario: str) -> Conn:
        """Open one client connection to the server on ``port`` for ``scenario``."""
        raise NotImplementedError


def cpu_seconds() -> float:
    """Return this process's user + system CPU time in seconds (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
