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
import shutil
import tempfile
from pathlib import Path

import gevent
import gevent.event
import pytest
from helpers.browser import BrowserService, PageServer, launch, require_chromium, run_page, stop

import rpcengine
from dispatchers import MethodDispatcher
from rpcengine import Request

websocket = pytest.importorskip("transports.websocket")

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


@pytest.mark.timeout(90)
def test_page_uses_every_feature_of_the_browser_client() -> None:
    require_chromium()
    service = BrowserService()
    page = PageServer()
    server = websocket.WebSocketServer(
        ("127.0.0.1", 0),
        {"/rpc": MethodDispatcher(service)},
        origins=[page.origin],  # the page comes from another port: another origin
        heartbeat_interval=1.0,
        heartbeat_timeout=5.0,
    ).start()
    results = run_page(server, page, PAGE, service)
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

    require_chromium()
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
    require_chromium()
    service = BrowserService()
    page = PageServer()
    guarded = websocket.WebSocketServer(("127.0.0.1", 0), {"/rpc": MethodDispatcher(service)}).start()
    reporting = websocket.WebSocketServer(
        ("127.0.0.1", 0), {"/rpc": MethodDispatcher(service)}, origins=[page.origin]
    ).start()
    try:
        outcome = run_page(reporting, page, REFUSED_PAGE, service, guarded=guarded.url("/rpc"))
    finally:
        guarded.stop(timeout=1)
    assert outcome == "closed 1006", outcome  # the browser saw the upgrade fail (the 403 it does not show)
    assert len(guarded.links) == 0


CANCEL_PAGE = """<!doctype html>
<html><head><title>rpcengine browser cancel test</title>
<script>
  // Record every frame the page receives, beneath the client.
  window.received = [];
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => window.received.push(event.data));
    }
  };
</script>
<script src="%(base)s/rpcengine.js"></script></head>
<body><script>
(async () => {
  const results = {errors: []};
  try {
    const client = new rpcengine.Client("%(url)s", {timeout: 5});
    client.handle("wait", () => new Promise((resolve) => setTimeout(() => resolve("waited"), 300)));
    await client.ready;
    results.outcome = await client.request("ask_client_then_give_up");
    await new Promise((resolve) => setTimeout(resolve, 400));  // anything sent late would arrive by now
    client.close();
  } catch (e) {
    results.errors.push(String(e && e.stack || e));
  }
  results.received = window.received;
  const reporter = new rpcengine.Client("%(url)s", {timeout: 5});
  await reporter.request("report", results);
  reporter.close();
})();
</script></body></html>
"""


class CancellingService(BrowserService):
    """Calls the browser with a timeout it overruns, then cancels a second call."""

    def rpc_ask_client_then_give_up(self, request: Request) -> object:
        """Time out on one call to the page and cancel another; return the session's features."""
        engine = request.engine
        assert engine is not None
        try:
            engine.request("wait", timeout=0.05)
        except rpcengine.RequestTimeout:
            pass
        call = engine.call("wait", timeout=5)
        call.cancel()
        return sorted(engine.transport.features)


@pytest.mark.timeout(90)
def test_the_browser_client_without_the_features_never_receives_a_cancel_or_a_deadline() -> None:
    require_chromium()
    service = CancellingService()
    page = PageServer()
    server = websocket.WebSocketServer(
        ("127.0.0.1", 0), {"/rpc": MethodDispatcher(service)}, origins=[page.origin]
    ).start()
    results = run_page(server, page, CANCEL_PAGE, service)
    assert results["errors"] == []
    assert results["outcome"] == [], "the browser client's session has no features"
    frames = [json.loads(frame) for frame in results["received"]]
    requests = [frame for frame in frames if isinstance(frame, list) and frame[:1] == [2]]
    assert [frame[2] for frame in requests] == ["wait", "wait"]
    assert all(len(frame) == 4 for frame in requests), requests
    assert not [frame for frame in frames if isinstance(frame, list) and frame[:1] == [5]]
