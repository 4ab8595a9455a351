"""A TcpServer in a process of its own, for tests that kill, freeze, restart or load it.

Usage: ``python tcp_server_process.py HOST PORT OPTIONS_JSON``. It prints the
port it listens on, then serves until killed. Methods: ``echo`` (returns its
data), ``hang`` (never answers), ``connections`` (open connections now),
``slow`` (sleeps ``data`` seconds, counting the calls that started) and
``stats`` (resident memory, sessions, detached sessions, bytes queued, calls
started, the largest outbox, sessions closed over the memory budget or as
slow consumers) and ``swamp`` (requests without a timeout to every other
session, past ``max_pending``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import gevent

from dispatchers import Registry
from rpcengine import TooManyPendingRequests
from transports.tcp import TcpServer


def main() -> None:
    """Serve on the address and options given on the command line."""
    host, port, options = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    registry = Registry()

    @registry.register
    def echo(request: Any) -> Any:
        return request.data

    @registry.register
    def hang(request: Any) -> Any:
        gevent.sleep(3600)

    @registry.register
    def connections(request: Any) -> int:
        return len(server.links)

    started = {"slow": 0, "slow_finished": 0, "closed_over_budget": 0, "closed_slow_consumer": 0}

    @registry.register
    def slow(request: Any) -> Any:
        started["slow"] += 1
        try:
            gevent.sleep(request.data)
        finally:
            started["slow_finished"] += 1
        return request.data

    @registry.register
    def swamp(request: Any) -> dict[str, int]:
        """Start ``data`` requests with no timeout to every other session at once; say how many were refused.

        The server's ``max_pending`` (1,024 per session by default) bounds them:
        the rest raise TooManyPendingRequests at once.
        """
        refused = 0
        others = [s for s in server.sessions if s.engine is not None and s.engine is not request.engine]
        for session in others:
            for _ in range(request.data):
                try:
                    session.engine.call("ping", None)
                except TooManyPendingRequests:
                    refused += 1
        return {"refused": refused, "most_pending": max((s.engine.pending_count for s in others), default=0)}

    @registry.register
    def flood(request: Any) -> int:
        """Start ``data`` concurrent requests (each waiting 30 s at most) to every other session."""
        others = [s for s in server.sessions if s.engine is not None and s.engine is not request.engine]
        for session in others:
            for _ in range(request.data):
                gevent.spawn(_quietly, session.engine.request, "ping", None, 30)
        return len(others)

    @registry.register
    def burst(request: Any) -> dict[str, Any]:
        """Broadcast ``data`` notifications as fast as possible; report what the broadcasts did."""
        delivered = closed = 0
        waited = 0.0
        for i in range(request.data):
            result = server.sessions.notify("tick", i)
            delivered += int(result)
            closed += result.closed
            waited += result.waited
        return {"delivered": delivered, "closed": closed, "waited": waited}

    @registry.register
    def stats(request: Any) -> dict[str, Any]:
        return {
            "rss": _rss_bytes(),
            "sessions": len(server.sessions),
            "detached": len(server.detached),
            "links": len(server.links),
            "queued_bytes": server.budget.used,
            "slow_started": started["slow"],
            "slow_finished": started["slow_finished"],
            "largest_outbox": max((len(s.outbox) for s in server.sessions), default=0),
            "evicted": server.evicted_sessions,
            "closed_over_budget": started["closed_over_budget"],
            "closed_slow_consumer": started["closed_slow_consumer"],
        }

    def ended(session: Any) -> None:
        if session.close_reason.startswith("memory budget exceeded"):
            started["closed_over_budget"] += 1
        elif session.close_reason.startswith("slow consumer"):
            started["closed_slow_consumer"] += 1

    server = TcpServer((host, port), registry, on_disconnect=ended, **options).start()
    print(server.address[1], flush=True)
    server.serve_forever()


def _quietly(call: Any, *args: Any) -> None:
    """Run ``call``; its failure (a timeout, a lost connection) is expected and dropped."""
    try:
        call(*args)
    except Exception as exc:  # the flood's requests are meant to fail
        print(f"flood request ended: {type(exc).__name__}", file=sys.stderr)


def _rss_bytes() -> int:
    """This process's resident memory, from /proc."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    main()
