"""Run the rpcengine command line for real: `python -m rpcengine ...` in a subprocess, with bounded waits."""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

SERVICE = "rpcengine.cli.demo_service:DemoService"
URL_LINE = re.compile(r"^listening on ((?:tcp|tls|ws|wss)://\S+|unix:\S+)$")


def run_cli(
    *args: str,
    timeout: float = 30,
    stdin: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m rpcengine ARGS` to completion (stdout and stderr captured, so piped)."""
    return subprocess.run(
        [sys.executable, "-m", "rpcengine", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin,
        cwd=cwd,
        env=env,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """Assert the exit code and that stderr is exactly one line without a traceback; return it."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


class Served:
    """A `rpcengine serve` subprocess and the URLs it printed (read by threads, so reads can time out)."""

    def __init__(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpcengine", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self._stderr_reader = threading.Thread(target=self._read_errors, daemon=True)
        self._stderr_reader.start()
        self.urls: list[str] = []

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errors.append(line)

    @property
    def stderr(self) -> str:
        """What the server printed on stderr so far."""
        return "".join(self.errors)

    def wait_for_stderr(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        """Return the first match of ``pattern`` in the server's stderr, waiting for it up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.stderr, re.MULTILINE)
            if match:
                return match
            assert time.monotonic() < deadline, f"no {pattern!r} in the server's stderr:\n{self.stderr}"
            time.sleep(0.02)

    def wait_for(self, count: int, timeout: float = 15) -> list[str]:
        """Read the `listening on URL` lines; fail with stderr if the server exits first."""
        deadline = time.monotonic() + timeout
        while len(self.urls) < count:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"serve printed no URL within {timeout} s") from None
            if not line:
                code = self.proc.wait(5)
                self._stderr_reader.join(5)
                raise AssertionError(f"serve exited {code}: {self.stderr}")
            match = URL_LINE.match(line.strip())
            assert match, line
            self.urls.append(match.group(1))
        return self.urls

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal the server and return its exit code (kill it if it does not end in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            self._stderr_reader.join(5)


def listen_while(
    listen_args: list[str], trigger: Callable[[], None], timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """Run `listen LISTEN_ARGS` and call ``trigger`` (which makes a broadcast) until it exits; return its result.

    The listener connects while ``trigger`` runs, so the first broadcasts may
    come before it listens: ``trigger`` is called again every half second
    (at most ``timeout`` seconds) until the listener has ended.
    """
    listener = subprocess.Popen(
        [sys.executable, "-m", "rpcengine", "listen", *listen_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while listener.poll() is None:
            assert time.monotonic() < deadline, "listen did not end"
            trigger()
            try:
                listener.wait(0.5)
            except subprocess.TimeoutExpired:
                pass
        out, err = listener.communicate(timeout=10)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.communicate()
    return subprocess.CompletedProcess(listener.args, listener.returncode, out, err)


def free_port() -> int:
    """Return a TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def host_port(url: str) -> tuple[str, int]:
    """Return the host and port of a ``scheme://host:port[/path]`` URL (IPv4)."""
    rest = url.split("://", 1)[1].split("/", 1)[0]
    host, port = rest.rsplit(":", 1)
    return host, int(port)


def listen_while_notifying(listen_url: str, notify_url: str, *options: str, timeout: float = 20) -> tuple[str, str]:
    """Run ``listen LISTEN_URL --count 1 OPTIONS`` while ``notify NOTIFY_URL say ...`` repeats; return (stdout, stderr).

    Each notify must succeed silently; the listener must exit 0 within ``timeout`` seconds.
    """

    def say() -> None:
        sent = run_cli("notify", notify_url, "say", '{"name": "cli", "text": "hi"}')
        assert sent.returncode == 0 and sent.stdout == "" and sent.stderr == "", sent

    listened = listen_while([listen_url, "--count", "1", *options], say, timeout)
    assert listened.returncode == 0, listened.stderr
    return listened.stdout, listened.stderr
