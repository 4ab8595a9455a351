"""One broker node in a process of its own: a TcpServer with a RedisBroker, for the multi-process tests.

Usage: ``python broker_node.py REDIS_URL PREFIX LIVENESS_TTL``. It runs gevent's hub-block
monitor (0.1 s) and counts what it reports, prints one JSON line
``{"port": ..., "node": ...}`` once its subscription is up, then serves
until its stdin closes or it is killed. Methods (for the test, on the
server): ``broadcast`` ({method, data} -> what the broadcast reached),
``broadcast_many`` ({method, count, origin} -> totals), ``call_session``
({session, method, data, timeout} -> the answer, or the error's class and
the wall-clock time it ended), ``whoami`` (the caller's session id) and
``stats`` (broker counters, hub blocks, sessions).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import gevent

gevent.config.monitor_thread = True
gevent.config.max_blocking_time = 0.1

import gevent.events  # noqa: E402 - after the monitor is configured
from gevent.fileobject import FileObject  # noqa: E402

from dispatchers import Registry  # noqa: E402
from transports.redis import RedisBroker  # noqa: E402
from transports.tcp import TcpServer  # noqa: E402

BLOCKS: list[str] = []


def _count_blocks(event: object) -> None:
    if isinstance(event, gevent.events.EventLoopBlocked):
        BLOCKS.append("".join(event.info)[:2000])


def main() -> None:
    """Serve one node until stdin closes."""
    url, prefix, liveness_ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    gevent.events.subscribers.append(_count_blocks)
    gevent.get_hub().start_periodic_monitoring_thread()
    broker = RedisBroker(
        url,
        prefix,
        probe_interval=0.2,
        probe_timeout=0.5,
        max_reconnect_delay=0.5,
        liveness_interval=0.2,
        liveness_ttl=liveness_ttl,
    ).start()
    registry = Registry()

    @registry.register
    def broadcast(request: Any) -> Any:
        result = server.sessions.notify(request.data["method"], request.data.get("data"))
        return {"delivered": int(result), "nodes": result.nodes, "dropped": result.dropped}

    @registry.register
    def broadcast_many(request: Any) -> Any:
        spec = request.data
        delivered = dropped = 0
        for seq in range(spec["count"]):
            result = server.sessions.notify(spec["method"], [spec["origin"], seq])
            delivered += int(result)
            dropped += result.dropped
        return {"delivered": delivered, "dropped": dropped}

    @registry.register
    def call_session(request: Any) -> Any:
        spec = request.data
        started = time.monotonic()
        try:
            answer = server.sessions.request(spec["session"], spec["method"], spec.get("data"), spec.get("timeout"))
        except Exception as exc:
            return {"error": type(exc).__name__, "text": str(exc), "ended": time.time(),
                    "took": time.monotonic() - started}  # fmt: skip
        return {"answer": answer, "took": time.monotonic() - started}

    @registry.register
    def whoami(request: Any) -> Any:
        return request.engine.transport.session_id

    @registry.register
    def stats(request: Any) -> Any:
        return {**broker.stats.as_dict(), "blocks": BLOCKS, "sessions": len(server.sessions),
                "subscribed": broker.subscribed, "node": broker.node_id}  # fmt: skip

    server = TcpServer(("127.0.0.1", 0), registry, broker=broker)
    server.start()
    if not broker.wait_subscribed(10):
        raise SystemExit("the broker did not subscribe within 10 s")
    print(json.dumps({"port": server.address[1], "node": broker.node_id}), flush=True)
    stdin = FileObject(sys.stdin.buffer, "rb")
    while stdin.read(1):
        pass
    server.stop(timeout=1)
    broker.stop()


if __name__ == "__main__":
    main()
