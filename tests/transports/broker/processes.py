"""Broker nodes and queue workers in processes of their own, started and killed by the tests (cooperatively)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import gevent
from gevent import subprocess

from rpcengine import Engine
from transports.tcp import connect

ROOT = Path(__file__).resolve().parents[3]
HELPERS = ROOT / "tests" / "helpers"


def _spawn(script: str, *args: str) -> subprocess.Popen:
    """Start a helper script with this interpreter and the repository on its path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(HELPERS / script), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        cwd=str(ROOT),
    )


def _first_line(process: subprocess.Popen, timeout: float) -> bytes:
    """Read the process's first stdout line (yielding), within ``timeout`` seconds."""
    assert process.stdout is not None
    with gevent.Timeout(timeout, RuntimeError(f"no first line from {process.args} within {timeout} s")):
        line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{process.args} exited with {process.wait()} before it was ready")
    return line


def _end(process: subprocess.Popen) -> None:
    """End a helper process: close its stdin (it exits at EOF), SIGKILL it after 10 s; reap it."""
    if process.poll() is not None:
        return
    assert process.stdin is not None
    process.stdin.close()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


#: Seconds a node's liveness key lives (short, so that a frozen node is seen as gone quickly).
LIVENESS_TTL = 1.0


class NodeProcess:
    """One broker node (a TcpServer with a RedisBroker) in its own process."""

    def __init__(self, url: str, prefix: str) -> None:
        self.process = _spawn("broker_node.py", url, prefix, str(LIVENESS_TTL))
        ready = json.loads(_first_line(self.process, 30))
        self.port: int = ready["port"]
        self.node: str = ready["node"]
        self.control = connect("127.0.0.1", self.port)

    def rpc(self, method: str, data: Any = None, timeout: float = 30) -> Any:
        """Call the node's own test methods."""
        return self.control.request(method, data, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.control.close()

    def stop(self) -> None:
        """End the process (close its stdin; SIGKILL after 10 s) and reap it."""
        if self.process.poll() is None:
            self.control.close()
        _end(self.process)

    def freeze(self) -> None:
        """SIGSTOP the process: its sockets stay open, it does nothing (a machine that vanished)."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen process."""
        self.process.send_signal(signal.SIGCONT)


class WorkerProcess:
    """One QueueWorker in its own process, logging each run to ``log``."""

    def __init__(
        self, url: str, prefix: str, queue: str, consumer: str, log: Path, concurrency: int, claim_idle: float
    ) -> None:
        self.consumer = consumer
        self.log = log
        log.touch()
        self.process = _spawn(
            "queue_worker_process.py", url, prefix, queue, consumer, str(log), str(concurrency), str(claim_idle)
        )
        assert _first_line(self.process, 30).strip() == b"ready"

    def runs(self) -> list[str]:
        """The data of every run so far (``BLOCKED`` lines excluded)."""
        return [line for line in self.log.read_text().splitlines() if line and line != "BLOCKED"]

    def blocks(self) -> int:
        """How many hub blocks the process reported."""
        return self.log.read_text().splitlines().count("BLOCKED")

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """End the process (close its stdin; SIGKILL after 10 s) and reap it."""
        _end(self.process)


class Listener:
    """A client of one node that records every notification and answers ``slow`` calls."""

    def __init__(self, port: int) -> None:
        from dispatchers import Registry

        self.received: list[Any] = []
        self.started = 0
        registry = Registry()
        registry.register(self.tick)
        registry.register(self.slow)
        registry.register(self.echo)
        self.engine: Engine = connect("127.0.0.1", port, registry)
        self.session_id: str = self.engine.transport.session_id  # type: ignore[attr-defined]

    def tick(self, notification: Any) -> None:
        self.received.append(notification.data)

    def slow(self, request: Any) -> Any:
        self.started += 1
        gevent.sleep(request.data)
        return "done"

    def echo(self, request: Any) -> Any:
        return request.data
