"""`rpcengine serve --unpack-params`, run for real: handlers that take parameters, served from a subprocess."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpcengine import RequestException
from transports.tcp import connect

SERVICE = '''
class Calc:
    def rpc_add(self, a: int, b: int = 1) -> int:
        """Return a + b."""
        return a + b


class Broken:
    def rpc_f(self, values: set[int]) -> None:
        """set[int] cannot be checked."""
'''


def serve(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rpcengine", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def first_line(proc: subprocess.Popen[str], timeout: float = 15) -> str:
    """Return the first line of stdout, read by a thread so that the wait is bounded."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    return lines.get(timeout=timeout)


@pytest.fixture
def service_dir(tmp_path: Path) -> Path:
    (tmp_path / "calc_service.py").write_text(SERVICE)
    return tmp_path


@pytest.fixture
def address(service_dir: Path) -> Iterator[tuple[str, int]]:
    proc = serve(service_dir, "calc_service:Calc", "tcp://127.0.0.1:0", "--unpack-params")
    try:
        line = first_line(proc)
        assert line.startswith("listening on tcp://127.0.0.1:"), line + (proc.stderr.read() if proc.poll() else "")
        host, port = line.strip().removeprefix("listening on tcp://").rsplit(":", 1)
        yield host, int(port)
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_served_methods_take_parameters(address: tuple[str, int]) -> None:
    client = connect(*address, connect_timeout=10)
    try:
        assert client.request("add", [2, 3], timeout=5) == 5
        assert client.request("add", {"a": 2}, timeout=5) == 3
        with pytest.raises(RequestException) as caught:
            client.request("add", [1, 2, 3], timeout=5)
        assert caught.value.data == {
            "error": "invalid_params",
            "message": "add(a, b=1) takes 1 to 2 arguments, got 3",
            "method": "add",
            "expected": "add(a, b=1)",
            "got": "3 arguments",
        }
        described = client.request("rpcengine.describe", timeout=5)
        assert [(entry["name"], entry["signature"], entry["takes"]) for entry in described] == [
            ("add", "(a: int, b: int = 1) -> int", "params")
        ]
    finally:
        client.close()


def test_an_annotation_that_cannot_be_checked_is_a_one_line_usage_error(service_dir: Path) -> None:
    proc = serve(service_dir, "calc_service:Broken", "tcp://127.0.0.1:0", "--unpack-params")
    try:
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 2, (stdout, stderr)
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "calc_service:Broken: f: parameter values: cannot check values against set[int]" in lines[0]
