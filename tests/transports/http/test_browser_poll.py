"""rpcengine.js in headless Chromium with WebSocket disabled: it falls back to long-poll and keeps its API."""

from __future__ import annotations

import pytest
from helpers.browser import BrowserService, PageServer, require_chromium, run_page

from dispatchers import MethodDispatcher
from transports.websocket import WebSocketServer

PAGE = """<!doctype html>
<html><head><title>rpcengine long-poll test</title>
<script>window.WebSocket = undefined;  // as in a browser (or behind a proxy) without WebSocket</script>
<script src="%(base)s/rpcengine.js"></script></head>
<body><script>
(async () => {
  const results = {errors: []};
  try {
    const client = new rpcengine.Client("%(url)s", {timeout: 5});
    const broadcast = new Promise((resolve) => client.on("notification", (method, data) => resolve(data)));
    client.handle("double", (x) => x * 2);
    await client.ready;
    results.transport = client.transport;
    results.add = await client.request("add", [2, 3]);
    try { await client.request("no_such_method"); } catch (e) { results.unknown = e.data.error; }
    results.callback = await client.request("ask_client", 21);
    await client.request("broadcast", {headline: "hello pollers"});
    results.broadcast = await broadcast;
    client.notify("note", "from the browser");
    results.report_sent = true;
  } catch (e) {
    results.errors.push(String(e && e.stack || e));
  }
  const reporter = new rpcengine.Client("%(url)s", {timeout: 5, transport: "poll"});
  await reporter.request("report", results);
  reporter.close();
})();
</script></body></html>
"""


@pytest.mark.timeout(90)
def test_the_browser_client_falls_back_to_long_poll() -> None:
    require_chromium()
    service = BrowserService()
    page = PageServer()
    server = WebSocketServer(
        ("127.0.0.1", 0), {"/rpc": MethodDispatcher(service)}, origins=[page.origin], poll_hold=5.0
    ).start()
    results = run_page(server, page, PAGE, service)
    assert results["errors"] == []
    assert results["transport"] == "poll"
    assert results["add"] == 5
    assert results["unknown"] == "method_not_found"
    assert results["callback"] == 42
    assert results["broadcast"] == {"headline": "hello pollers"}
    assert service.notes == ["from the browser"]
