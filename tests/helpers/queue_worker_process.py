"""One queue worker in a process of its own, for the multi-process queue tests.

Usage: ``python queue_worker_process.py REDIS_URL PREFIX QUEUE CONSUMER LOG CONCURRENCY CLAIM_IDLE``.
The handler ``work`` appends its data to LOG (one line per run, written
before it answers, so a run survives SIGKILL), naps 2 ms and returns the
data. Blocks of the hub (gevent's monitor, 0.1 s) are written to LOG as
``BLOCKED`` lines. Prints ``ready`` once the worker reads, then works until
stdin closes or it is killed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import gevent

gevent.config.monitor_thread = True
gevent.config.max_blocking_time = 0.1

import gevent.events  # noqa: E402
from gevent.fileobject import FileObject  # noqa: E402

from dispatchers import Registry  # noqa: E402
from transports.redis import QueueWorker  # noqa: E402


def main() -> None:
    """Work the queue until stdin closes."""
    url, prefix, queue, consumer, log_path = sys.argv[1:6]
    concurrency, claim_idle = int(sys.argv[6]), float(sys.argv[7])
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def blocked(event: object) -> None:
        if isinstance(event, gevent.events.EventLoopBlocked):
            os.write(log_fd, b"BLOCKED\n")

    gevent.events.subscribers.append(blocked)
    gevent.get_hub().start_periodic_monitoring_thread()
    registry = Registry()

    @registry.register
    def work(request: Any) -> Any:
        os.write(log_fd, f"{request.data}\n".encode())
        gevent.sleep(0.002)
        return request.data

    worker = QueueWorker(
        url, queue, registry, prefix=prefix, consumer=consumer, concurrency=concurrency, claim_idle=claim_idle
    ).start()
    print("ready", flush=True)
    stdin = FileObject(sys.stdin.buffer, "rb")
    while stdin.read(1):
        pass
    worker.stop(1)


if __name__ == "__main__":
    main()
