"""A tiny line-based control channel from the client worker to the server worker.

The server worker listens on a second loopback port; the client sends
``cpu``, ``mem``, ``count switches``, ``count calls`` or ``count stop`` and
reads one JSON line back. It is only used between timed phases, so it does
not disturb the measurements.
"""

from __future__ import annotations

import gc
import json
import os
import tracemalloc
from collections.abc import Callable
from typing import Any

from gevent import socket
from gevent.server import StreamServer

from benchmarks.base import cpu_seconds
from benchmarks.counting import COUNTER


def rss_bytes() -> int:
    """Return this process's resident set size in bytes (from /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_report() -> dict[str, Any]:
    """Collect garbage, then return traced Python memory (if tracemalloc runs) and RSS."""
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    return {"traced": traced, "rss": rss_bytes()}


def _answer(command: str) -> dict[str, Any]:
    if command == "cpu":
        return {"cpu": cpu_seconds()}
    if command == "mem":
        return memory_report()
    if command == "count stop":
        return {"count": COUNTER.stop()}
    if command.startswith("count "):
        COUNTER.start(command.split(" ", 1)[1])
        return {"counting": COUNTER.kind}
    return {"error": f"unknown command {command!r}"}


def _handle(sock: socket.socket, _address: Any) -> None:
    reader = sock.makefile("rb")
    try:
        for line in reader:
            sock.sendall(json.dumps(_answer(line.decode().strip())).encode() + b"\n")
    except OSError:
        pass
    finally:
        reader.close()
        sock.close()


def start_control_server() -> tuple[int, Callable[[], None]]:
    """Start the control server on 127.0.0.1; return its port and stopper."""
    server = StreamServer(("127.0.0.1", 0), _handle)
    server.start()
    return server.address[1], lambda: server.stop(timeout=1)


class ControlClient:
    """The client worker's end of the control channel."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.reader = self.sock.makefile("rb")

    def ask(self, command: str) -> dict[str, Any]:
        """Send ``command`` and return the decoded answer."""
        self.sock.sendall(command.encode() + b"\n")
        return json.loads(self.reader.readline())

    def cpu(self) -> float:
        """The server process's CPU seconds so far."""
        return float(self.ask("cpu")["cpu"])

    def close(self) -> None:
        """Close the channel."""
        self.reader.close()
        self.sock.close()


class NoControl:
    """Stand-in when the server runs in the client process (loopback): no separate server CPU."""

    def cpu(self) -> float:
        """Always 0."""
        return 0.0

    def ask(self, command: str) -> dict[str, Any]:
        """Answer locally; ``count`` commands answer nothing (the client's own count covers both ends)."""
        if command.startswith("count"):
            return {}
        return _answer(command)

    def close(self) -> None:
        """Nothing to close."""
