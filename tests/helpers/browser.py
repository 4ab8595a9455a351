"""Headless Chromium for the browser tests: a page server on loopback, launching and stopping the browser.

Chromium comes from Debian's packages (``.ci/install-chromium.sh``, run by
``.ci/setup.sh --test``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import pytest
from gevent.pywsgi import WSGIServer

from rpcengine import Request, RequestException

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


class BrowserService:
    """What the page calls; ``report`` ends the test."""

    def __init__(self) -> None:
        self.server: Any = None
        self.report: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self.notes: list[object] = []

    def rpc_add(self, request: Request) -> int:
        """Return the sum of two numbers."""
        return request.data[0] + request.data[1]

    def rpc_refuse(self, request: Request) -> None:
        """Answer with an application error."""
        raise RequestException({"error": "refused", "value": request.data})

    def rpc_ask_client(self, request: Request) -> object:
        """Call the browser back over the same connection."""
        return request.engine.request("double", request.data, timeout=5)  # type: ignore[union-attr]

    def rpc_ask_client_to_fail(self, request: Request) -> object:
        """Call a browser handler that throws; return the error data it sent."""
        try:
            request.engine.request("fail", None, timeout=5)  # type: ignore[union-attr]
        except RequestException as exc:
            return exc.data
        return None

    def rpc_broadcast(self, request: Request) -> int:
        """Send a notification to every connected session."""
        return self.server.sessions.notify("news", request.data)

    def rpc_slow(self, request: Request) -> str:
        """Answer after a while."""
        gevent.sleep(request.data)
        return "late"

    def rpc_drop_connection(self, request: Request) -> str:
        """Cut this session's connection right after answering (the client resumes)."""
        link = request.engine.transport.link  # type: ignore[union-attr]
        gevent.spawn_later(0.05, link.close, "dropped by the test")
        return "dropping"

    def rpc_note(self, request: Request) -> None:
        """Record a notification."""
        self.notes.append(request.data)

    def rpc_report(self, request: Request) -> str:
        """Receive the page's results."""
        self.report.set(request.data)
        return "thanks"


class PageServer:
    """An HTTP server on a free loopback port answering every GET with one HTML page (set later)."""

    def __init__(self) -> None:
        self.html = ""
        self.server = WSGIServer(("127.0.0.1", 0), self._app, log=None)
        self.server.start()

    @property
    def origin(self) -> str:
        """The origin of the page, as a browser sends it in the Origin header."""
        return f"http://127.0.0.1:{self.server.address[1]}"

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = self.html.encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
        return [body]

    def stop(self) -> None:
        """Stop serving."""
        self.server.stop(timeout=1)


def launch(url: str, profile: str) -> subprocess.Popen:
    """Start headless Chromium on ``url`` in its own process group."""
    return subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    """Kill Chromium's whole process group and reap it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(5)
            return
        except subprocess.TimeoutExpired:
            continue


def require_chromium() -> None:
    """Skip the test if Chromium is missing (fail it on CI, where the set-up installs it)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/setup.sh --test installs it")
        pytest.skip("chromium is not installed (run .ci/install-chromium.sh)")


def run_page(server: Any, page: PageServer, template: str, service: BrowserService, **extra: str) -> Any:
    """Open ``template`` (``%(base)s``, ``%(url)s`` for ``/rpc``, and ``extra``) in Chromium; return its report.

    The page's report reaches ``service.report`` (bounded: 60 s); Chromium,
    the server and the page server are stopped afterwards.
    """
    service.server = server
    workdir = tempfile.mkdtemp(prefix="rpcengine-browser-")
    process = None
    try:
        base = f"http://127.0.0.1:{server.address[1]}"
        page.html = template % {"base": base, "url": server.url("/rpc"), **extra}
        process = launch(page.origin + "/", str(Path(workdir, "profile")))
        results = service.report.get(timeout=60)
    finally:
        if process is not None:
            stop(process)
        server.stop(timeout=1)
        page.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=1))
    return results
