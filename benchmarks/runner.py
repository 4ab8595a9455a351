"""The orchestrator's side of the worker processes: start, talk to, and always stop them.

Every case starts a fresh server worker (unless the system runs in process)
and a fresh client worker, both ``python -m benchmarks.worker`` children of
this process. The server is stopped in a ``finally`` (stdin closed, then
SIGKILL after 3 s); the client is killed when it overruns its time limit.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: The repository root: the workers run there so that rpcengine, transports and dispatchers import.
ROOT = Path(__file__).resolve().parent.parent


class WorkerError(RuntimeError):
    """A worker failed, timed out or printed no result."""


@dataclass
class Settings:
    """How long and how often to measure: ``rounds`` interleaved rounds of ``reps`` timed repetitions per case."""

    rounds: int = 5
    reps: int = 1
    duration: float = 1.5
    warmup: float = 0.5
    idle_connections: int = 1000
    d_calls: int = 100
    count_duration: float = 0.3


#: CPU each worker role is pinned to (server and client on separate cores), when pinning is on.
PINNED_CPUS = {"server": 1, "client": 0}
_pinning = {"on": False}


def pin_workers(enabled: bool) -> bool:
    """Pin server and client workers to separate CPUs from now on (needs 2 CPUs); return whether it is on."""
    _pinning["on"] = enabled and (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")
    return _pinning["on"]


class Worker:
    """One ``benchmarks.worker`` child process with its stderr kept in a temporary file."""

    def __init__(self, role: str, system: str, *args: str, alarm: int = 600) -> None:
        self.stderr: IO[bytes] = tempfile.TemporaryFile()
        command = [sys.executable, "-m", "benchmarks.worker", role, system, "--alarm", str(alarm), *args]
        cpu = PINNED_CPUS.get(role) if _pinning["on"] else None
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            preexec_fn=None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu})),
        )

    def error_tail(self, lines: int = 6) -> str:
        """The last lines the worker wrote on stderr."""
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace").strip().splitlines()[-lines:]
        return " | ".join(tail)

    def read_line(self, timeout: float) -> dict[str, Any]:
        """Wait up to ``timeout`` s for one JSON line on stdout."""
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise WorkerError(f"no answer within {timeout:.0f} s; stderr: {self.error_tail()}")
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(f"exited with {self.proc.wait()}; stderr: {self.error_tail()}")
        return json.loads(line)

    def result(self, timeout: float) -> dict[str, Any]:
        """Wait up to ``timeout`` s for the worker to finish; return its JSON result line."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise WorkerError(f"timed out after {timeout:.0f} s; stderr: {self.error_tail()}") from None
        lines = out.decode().strip().splitlines()
        if self.proc.returncode != 0 or not lines:
            raise WorkerError(f"exited with {self.proc.returncode}; stderr: {self.error_tail()}")
        return json.loads(lines[-1])

    def stop(self) -> None:
        """Close stdin (a server exits then), wait up to 3 s, then SIGKILL; always reaps."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def kill(self) -> None:
        """SIGKILL the worker if it still runs, reap it and drop its stderr file."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()
        self.stderr.close()


def probe(system: str) -> dict[str, Any]:
    """Ask a probe worker whether ``system`` runs here; return its info or a ``skip`` reason."""
    worker = Worker("probe", system, alarm=60)
    try:
        return worker.result(timeout=60)
    except WorkerError as exc:
        return {"skip": f"probe failed: {exc}"}
    finally:
        worker.kill()


def _with_server(
    system: str,
    info: dict[str, Any],
    client_args: list[str],
    role: str,
    timeout: float,
    server_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Start the server worker (unless in process), run one client worker, stop both."""
    server = None
    client = None
    alarm = int(timeout) + 30
    try:
        args = list(client_args)
        if not info.get("in_process"):
            server = Worker("server", system, *server_args, alarm=alarm)
            hello = server.read_line(timeout=30)
            args += ["--port", str(hello["port"]), "--control", str(hello["control"])]
        client = Worker(role, system, *args, alarm=alarm)
        return client.result(timeout=timeout)
    finally:
        if client is not None:
            client.kill()
        if server is not None:
            server.stop()


def run_case(
    system: str, info: dict[str, Any], scenario: str, settings: Settings, count: bool = False
) -> dict[str, Any]:
    """Run ``scenario`` of ``system`` once: warm-up, ``settings.reps`` repetitions, with ``count`` a counting pass."""
    per_rep = 40 + settings.d_calls * 1.2 if scenario == "D" else settings.duration + 15
    timeout = 60 + (settings.reps + 1) * per_rep + (30 if count else 0)
    args = [
        "--scenario",
        scenario,
        "--reps",
        str(settings.reps),
        "--duration",
        str(settings.duration),
        "--warmup",
        str(settings.warmup),
        "--d-calls",
        str(settings.d_calls),
        "--count",
        str(settings.count_duration if count and scenario != "D" else 0),
    ]
    return _with_server(system, info, args, "client", timeout)


def run_memory(system: str, info: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Measure bytes per idle connection and per pending request for ``system``."""
    args = ["--connections", str(settings.idle_connections)]
    return _with_server(system, info, args, "memory", 240, ("--tracemalloc",))
