"""The browser client in a real headless Chromium against our WebSocket server.

A page loads ``/rpcengine.js`` from the server, calls ``rpc_`` methods,
answers a server-initiated request, receives a broadcast, survives a
dropped connection (resume), and reports what it saw by calling the server.
The page comes from an HTTP server of its own, on another port: another
origin, which the WebSocket server admits because ``origins=`` names it
(by default it admits only pages it served itself).
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

from dispatchers import MethodDispatcher
from rpcengine import Request, RequestException

websocket = pytest.importorskip("transports.websocket")

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

PAGE = """<!doctype html>
<html><head><title>rpcengine browser test</title>
<script src="%(base)s/rpcengine.js"></script></head>
<body><script>
(async () => {
  const results = {errors: []};
  const waitFor = (check, ms) => new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => check() ? resolve()
      : (Date.now() - started > ms ? reject(new Error("waited too long")) : setTimeout(poll, 10));
    poll();
  });
  try {
    const client = new rpcengine.Client("%(url)s", {timeout: 5, initialDelay: 0.05});
    client.on("notification", (method, data) => { if (method === "news") results.broadcast = data; });
    client.handle("double", (x) => x * 2);
    client.handle("fail", () => { throw new Error("browser-side failure"); });
    await client.ready;
    const firstSession = client.sessionId;
    results.add = await client.request("add", [2, 3]);
    try { await client.request("no_such_method"); } catch (e) { results.unknown = e.data.error; }
    try { await client.request("refuse", 1); } catch (e) { results.refused = e.data; }
    results.callback = await client.request("ask_client", 21);
    results.callback_error = await client.request("ask_client_to_fail");
    await client.request("broadcast", {headline: "hello browsers"});
    await waitFor(() => results.broadcast !== undefined, 5000);
    try { await client.request("slow", 2, {timeout: 0.1}); } catch (e) { results.timeout = e.name; }
    let closes = 0;
    client.on("close", () => { closes += 1; });
    await client.request("drop_connection");
    await waitFor(() => closes > 0, 5000);
    results.after_reconnect = await client.request("add", [40, 2]);
    results.same_session = client.sessionId === firstSession;
    client.notify("note", "from the browser");
  } catch (e) {
    results.errors.push(String(e && e.stack || e));
  }
  const reporter = new rpcengine.Client("%(url)s", {timeout: 5});
  await reporter.request("report", results);
  reporter.close();
})();
</script></body></html>
"""


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


@pytest.mark.timeout(90)
def test_page_uses_every_feature_of_the_browser_client() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/setup.sh --test installs it")
        pytest.skip("chromium is not installed (run .ci/install-chromium.sh)")
    service = BrowserService()
    page = PageServer()
    server = websocket.WebSocketServer(
        ("127.0.0.1", 0),
        {"/rpc": MethodDispatcher(service)},
        origins=[page.origin],  # the page comes from another port: another origin
        heartbeat_interval=1.0,
        heartbeat_timeout=5.0,
    ).start()
    service.server = server
    workdir = tempfile.mkdtemp(prefix="rpcengine-browser-")
    process = None
    try:
        base = f"http://127.0.0.1:{server.address[1]}"
        page.html = PAGE % {"base": base, "url": server.url("/rpc")}
        process = launch(page.origin + "/", str(Path(workdir, "profile")))
        results = service.report.get(timeout=60)
    finally:
        if process is not None:
            stop(process)
        server.stop(timeout=1)
        page.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(results, indent=1))
    assert results["errors"] == []
    assert results["add"] == 5
    assert results["unknown"] == "method_not_found"
    assert results["refused"] == {"error": "refused", "value": 1}
    assert results["callback"] == 42
    assert results["callback_error"]["error"] == "internal_error"
    assert results["broadcast"] == {"headline": "hello browsers"}
    assert results["timeout"] == "RequestTimeout"
    assert results["after_reconnect"] == 42
    assert results["same_session"] is True
    assert service.notes == ["from the browser"]


class ReadmeService:
    """The Calculator of the README's browser example, recording its calls."""

    def __init__(self) -> None:
        self.added: gevent.event.AsyncResult = gevent.event.AsyncResult()

    def rpc_add(self, request: Request) -> int:
        """Return a + b."""
        self.added.set((request.data, request.engine))
        return request.data[0] + request.data[1]


@pytest.mark.timeout(90)
def test_readme_browser_example_runs_in_chromium() -> None:
    import re

    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/setup.sh --test installs it")
        pytest.skip("chromium is not installed (run .ci/install-chromium.sh)")
    readme = Path(__file__).resolve().parents[3].joinpath("README.md").read_text()
    (snippet,) = re.findall(r"^```html\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)
    service = ReadmeService()
    page = PageServer()
    server = websocket.WebSocketServer(
        ("127.0.0.1", 0), {"/rpc": MethodDispatcher(service)}, origins=[page.origin]
    ).start()
    workdir = tempfile.mkdtemp(prefix="rpcengine-readme-")
    process = None
    try:
        port = server.address[1]
        page.html = snippet.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        process = launch(page.origin + "/", str(Path(workdir, "profile")))
        data, engine = service.added.get(timeout=60)
        assert data == [2, 3]
        assert engine.request("ping", None, timeout=10) == "pong", "the page answers server-initiated calls"
    finally:
        if process is not None:
            stop(process)
        server.stop(timeout=1)
        page.stop()
        shutil.rmtree(workdir, ignore_errors=True)


REFUSED_PAGE = """<!doctype html>
<html><head><title>rpcengine origin test</title>
<script src="%(base)s/rpcengine.js"></script></head>
<body><script>
(async () => {
  const outcome = await new Promise((resolve) => {
    const socket = new WebSocket("%(guarded)s");
    socket.onopen = () => { resolve("open"); socket.close(); };
    socket.onclose = (event) => resolve("closed " + event.code);
  });
  const reporter = new rpcengine.Client("%(url)s", {timeout: 5});
  await reporter.request("report", outcome);
  reporter.close();
})();
</script></body></html>
"""


@pytest.mark.timeout(90)
def test_a_page_of_another_origin_is_refused_by_default() -> None:
    """Chromium's own Origin header: a server with default options refuses a page it did not serve."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/setup.sh --test installs it")
        pytest.skip("chromium is not installed (run .ci/install-chromium.sh)")
    service = BrowserService()
    page = PageServer()
    guarded = websocket.WebSocketServer(("127.0.0.1", 0), {"/rpc": MethodDispatcher(service)}).start()
    reporting = websocket.WebSocketServer(
        ("127.0.0.1", 0), {"/rpc": MethodDispatcher(service)}, origins=[page.origin]
    ).start()
    workdir = tempfile.mkdtemp(prefix="rpcengine-origin-")
    process = None
    try:
        base = f"http://127.0.0.1:{reporting.address[1]}"
        page.html = REFUSED_PAGE % {"base": base, "guarded": guarded.url("/rpc"), "url": reporting.url("/rpc")}
        process = launch(page.origin + "/", str(Path(workdir, "profile")))
        outcome = service.report.get(timeout=60)
    finally:
        if process is not None:
            stop(process)
        guarded.stop(timeout=1)
        reporting.stop(timeout=1)
        page.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    assert outcome == "closed 1006", outcome  # the browser saw the upgrade fail (the 403 it does not show)
    assert len(guarded.links) == 0
