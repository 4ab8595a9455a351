"""`python -m rpcengine demo`, run for real in a subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

HAS_WEBSOCKET = importlib.util.find_spec("transports.websocket") is not None

STEPS = [
    "1. request: alice calls add(5)",
    "   answer: 5",
    '   alice got  counter.changed {"value": 5, "by": 5}',
    '   bob   got  counter.changed {"value": 5, "by": 5}',
    "3. notification: bob sends say(...)",
    '   alice got  chat.message {"name": "bob", "text": "hello from bob"}',
    '   bob   got  chat.message {"name": "bob", "text": "hello from bob"}',
    '   the server asked alice: whoami() -> "alice"',
    '   answer: "Hello, alice!"',
    '   RequestException: {"error": "invalid_params", "message": "add takes an integer", "got": "five"}',
    "   RequestTimeout: no answer to 'sleep'",
    "7. introspection:",
    "   add    Add an integer (default 1) to the counter",
    "   echo   Return the data as it arrived",
    "done: every server stopped",
]


def test_the_readme_demo_command_runs_the_script_and_exits_0() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "rpcengine", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    position = 0
    for step in STEPS:
        found = result.stdout.find(step, position)
        assert found >= 0, f"missing or out of order: {step!r}\n{result.stdout}"
        position = found
    assert re.search(r"TCP server\s+tcp://127\.0\.0\.1:\d+", result.stdout)
    if HAS_WEBSOCKET:
        assert "alice connects over TCP, bob over WebSocket." in result.stdout
        assert re.search(r"WebSocket server\s+ws://127\.0\.0\.1:\d+/demo", result.stdout)
        page = re.search(r"browser page\s+(http://127\.0\.0\.1:\d+/)", result.stdout)
        assert page
        # The page is only alive while the demo runs: the demo says so up front, and that it is gone at the end.
        assert "the demo stops after its script: add --keep-running 300 to keep it up" in result.stdout
        last = result.stdout.rstrip().splitlines()[-1]
        assert (
            last == f"the browser page {page.group(1)} is gone with them; rpcengine demo --keep-running 300 keeps it up"
        )
    else:
        assert "runs over TCP only" in result.stdout
    assert time.monotonic() - started < 30


def test_the_demo_runs_over_tcp_alone_without_the_websocket_module() -> None:
    code = (
        "import sys; sys.modules['transports.websocket'] = None;"  # as if the module were not there
        "from rpcengine.__main__ import main; sys.exit(main(['demo', '--base-port', '0']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "runs over TCP only" in result.stdout and "alice connects over TCP, bob over TCP." in result.stdout
    assert '   bob   got  chat.message {"name": "bob", "text": "hello from bob"}' in result.stdout
    assert "done: every server stopped" in result.stdout


class Demo:
    """A demo subprocess whose output lines are read by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpcengine", "demo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """Return the first match of ``pattern`` in a line printed from now on, or fail."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if not line:
                raise AssertionError("the demo ended early:\n" + "".join(self.seen))
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def end(self) -> int:
        """Return the exit code, killing the demo if it has not ended within 15 s."""
        try:
            return self.proc.wait(15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)


def fetch(url: str) -> tuple[int, bytes]:
    """GET ``url``; return status and body."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.skipif(not HAS_WEBSOCKET, reason="transports.websocket is not available: no browser page")
def test_keep_running_serves_the_browser_page_until_ctrl_c() -> None:
    demo = Demo("--keep-running", "60", "--base-port", "0")
    try:
        page = demo.wait_for(r"browser page\s+(http://127\.0\.0\.1:\d+/)").group(1)
        demo.wait_for(r"^serving http://127\.0\.0\.1:\d+/ for 60 s more")
        status, body = fetch(page)
        assert status == 200
        html = body.decode()
        assert "rpcengine.Client" in html and "{{RPCENGINE_WS_URL}}" not in html
        assert re.search(r'<link rel="icon" type="image/svg\+xml" href="data:image/svg\+xml,[^"]+">', html)
        assert 'log("call", shown + " → "' in html  # the page logs its calls, not only broadcasts
        assert "disconnected: the demo has stopped" in html  # and says when its link is gone
        ws_url = re.search(r'<meta name="rpcengine-ws" content="(ws://127\.0\.0\.1:\d+/demo)">', html)
        assert ws_url, html[:400]
        script_status, _ = fetch(page + "rpcengine.js")
        assert script_status in (200, 404)
        assert fetch(page + "secret.txt")[0] == 404
        demo.proc.send_signal(signal.SIGINT)
        assert demo.end() == 0
    finally:
        demo.end()
    assert demo.proc.stderr is not None
    assert "Traceback" not in demo.proc.stderr.read()


def test_sigterm_during_keep_running_stops_everything() -> None:
    demo = Demo("--keep-running", "60", "--base-port", "0")
    try:
        demo.wait_for(r"^serving \S+ for 60 s more")
        demo.proc.send_signal(signal.SIGTERM)
        assert demo.end() == 0
    finally:
        demo.end()


CHROMIUM = shutil.which("chromium")
CLIENT_SCRIPT = Path(__file__).resolve().parents[2] / "transports" / "static" / "rpcengine.js"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]  # fmt: skip


@pytest.mark.skipif(not HAS_WEBSOCKET, reason="transports.websocket is not available: no browser page")
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/install-chromium.sh)")
@pytest.mark.skipif(not CLIENT_SCRIPT.exists(), reason="the browser client transports/static/rpcengine.js is missing")
def test_the_demo_page_passes_its_self_test_in_headless_chromium(tmp_path: Path) -> None:
    demo = Demo("--keep-running", "60", "--base-port", "0")
    listener = browser = None
    try:
        tcp_url = demo.wait_for(r"TCP server\s+(tcp://\S+)").group(1)
        page = demo.wait_for(r"browser page\s+(http://\S+)").group(1)
        demo.wait_for(r"^serving ")
        listener = subprocess.Popen(
            [sys.executable, "-m", "rpcengine", "listen", tcp_url, "--duration", "60"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert listener.stdout is not None
        assert json.loads(listener.stdout.readline())["method"] == "counter.changed"  # connected: alice's tick
        browser = subprocess.Popen(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path}", page + "#selftest"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        verdict = None
        deadline = time.monotonic() + 45
        while verdict is None and time.monotonic() < deadline:
            line = listener.stdout.readline()
            assert line, "listen ended before the page reported"
            message = json.loads(line)
            if message["method"] == "chat.message" and message["data"]["name"] == "selftest":
                if message["data"]["text"] != "ping":
                    verdict = message["data"]["text"]
        assert verdict == "passed"
        demo.proc.send_signal(signal.SIGINT)
        assert demo.end() == 0
    finally:
        if browser is not None:
            for signum in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(browser.pid, signum)
                    browser.wait(5)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
        if listener is not None:
            listener.kill()
            listener.communicate()
        demo.end()
