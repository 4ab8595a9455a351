"""A real redis-server for the tests: started on a Unix socket in a temporary folder, persistence off.

:class:`RedisServer` starts the Debian package's ``redis-server`` (installed
by ``.ci/setup.sh --test``) with no TCP port, waits until it answers PING,
and can be stopped and started again on the same socket (the restart test).
Everything here yields to the hub (gevent's subprocess and sockets), so the
hub-block monitor of the broker tests sees no block from it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import gevent
from gevent import socket, subprocess

from rpcengine.cli.demo_cluster import private_redis_args

__all__ = ["RedisServer", "redis_server_binary"]


def redis_server_binary() -> str:
    """Return the path of redis-server; raise RuntimeError naming the set-up step if it is missing."""
    path = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
    if path is None:
        raise RuntimeError("redis-server is not installed: run `bash .ci/setup.sh --test` (it installs Debian's)")
    return path


class RedisServer:
    """One redis-server process on ``folder/redis.sock`` (no TCP, no RDB, no AOF)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = str(folder / "redis.sock")
        self.url = f"unix://{self.path}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start it and wait (yielding) until it answers PING."""
        self.folder.mkdir(parents=True, exist_ok=True)
        args = private_redis_args(redis_server_binary(), self.path, self.folder)
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {self.log()}")
            if self._answers():
                return self
            gevent.sleep(0.02)  # polling a starting process: nothing to wait on but its socket
        raise RuntimeError(f"redis-server did not answer within {timeout} s: {self.log()}")

    def _answers(self) -> bool:
        """Whether the server answers PING on its socket now."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(self.path)
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop it (SIGTERM, then SIGKILL) and wait (yielding) for the process to end."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def log(self) -> str:
        """Return the server's log (for failure messages)."""
        path = self.folder / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""
