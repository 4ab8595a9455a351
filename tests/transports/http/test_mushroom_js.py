"""mushroom's own JavaScript client (0.9.17, from its sdist) in headless Chromium, against our server.

The file is fetched by the test set-up (``.ci/fetch-mushroom.sh``) into
``.cache/mushroom/``; it is mushroom's code, not ours. Over ``ws`` and over
``poll``, through mushroom's bootstrap: a request, an error, notifications
both ways, a server broadcast, the disconnect event; the bootstrap's
``auth`` reaches ``authenticate``, and a refused one gives 401.
(mushroom.js 0.9.17 cannot answer a server's request: its Response has no
``toList``, so that direction is tested with mushroom's Python client.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from helpers.browser import BrowserService, PageServer, require_chromium, run_page

from dispatchers import MethodDispatcher
from transports.websocket import WebSocketServer

MUSHROOM_JS = Path(__file__).resolve().parents[3] / ".cache" / "mushroom" / "mushroom.js"

PAGE = """<!doctype html>
<html><head><title>mushroom.js against rpcengine</title>
<script>%(mushroom_js)s</script>
<script src="%(base)s/rpcengine.js"></script></head>
<body><script>
(async () => {
  const results = {errors: [], notes: []};
  const done = new Promise((resolve) => { results.finish = resolve; });
  // A refused bootstrap first.
  await new Promise((resolve) => {
    const refused = new mushroom.Client({url: "%(bootstrap)s", transports: ["%(transport)s"]});
    refused.signals.error.connect((e) => { results.refused = e.name; resolve(); });
    refused.connect({token: "bad"});
  });
  const client = new mushroom.Client({url: "%(bootstrap)s", transports: ["%(transport)s"]});
  const call = (method, data) => new Promise((resolve, reject) => client.request(method, data, resolve, reject));
  let started = false;
  client.method("news", (notification) => { results.broadcast = notification.data; });
  client.method("note", (notification) => { results.notes.push(notification.data); });
  client.signals.error.connect((e) => results.errors.push(String(e && (e.name + ": " + e.message))));
  client.signals.disconnected.connect(() => { results.disconnected = true; results.finish(); });
  client.signals.connected.connect(async () => {
    if (started) return;  // (the poll transport says "connected" at every poll)
    started = true;
    try {
      results.transport = client.transport.constructor === mushroom.PollTransport ? "poll" : "ws";
      results.add = await call("add", [2, 3]);
      try { await call("no_such_method", null); } catch (data) { results.unknown = data.error; }
      await call("broadcast", {headline: "hello mushroom"});
      await call("notify_me", "to the page");
      client.notify("note", "from mushroom");
      results.after_notify = await call("add", [40, 2]);
      const waited = Date.now();
      while ((results.broadcast === undefined || results.notes.length === 0) && Date.now() - waited < 5000) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    } catch (e) {
      results.errors.push(String(e && e.stack || e));
    }
    client.disconnect();
  });
  client.connect({token: "good"});
  await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 15000))]);
  delete results.finish;
  const reporter = new rpcengine.Client("%(url)s", {timeout: 5});
  await reporter.request("report", results);
  reporter.close();
})();
</script></body></html>
"""


class MushroomPageService(BrowserService):
    """The browser service, plus a notification to the page that calls it."""

    def rpc_notify_me(self, request: Any) -> str:
        """Send the caller a notification."""
        request.engine.notify("note", request.data)  # type: ignore[union-attr]
        return "sent"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("transport", ["ws", "poll"])
def test_mushroom_js_calls_a_rpcengine_service(transport: str) -> None:
    require_chromium()
    if not MUSHROOM_JS.exists():
        if os.environ.get("CI"):
            pytest.fail("mushroom.js is missing: .ci/setup.sh --test fetches it")
        pytest.skip("mushroom.js is missing (run .ci/fetch-mushroom.sh)")
    service = MushroomPageService()
    page = PageServer()
    auths: list[Any] = []

    def authenticate(hello: Any, peer: Any) -> bool:
        if hello is None or not hello.extra.get("mushroom"):
            return True  # the page's reporter (rpcengine.js)
        auths.append(hello.extra["auth"])
        return hello.extra["auth"] == {"token": "good"}

    server = WebSocketServer(
        ("127.0.0.1", 0),
        {"/rpc": MethodDispatcher(service)},
        origins=[page.origin],
        mushroom="/mushroom",
        authenticate=authenticate,
        poll_hold=5.0,
    ).start()
    bootstrap = f"http://127.0.0.1:{server.address[1]}/mushroom/"
    template = PAGE.replace("%(mushroom_js)s", MUSHROOM_JS.read_text().replace("%", "%%"))
    results = run_page(server, page, template, service, bootstrap=bootstrap, transport=transport)
    assert results["errors"] == []
    assert results["refused"] == "mushroom.AuthenticationFailed"
    assert auths == [{"token": "bad"}, {"token": "good"}]
    assert results["transport"] == transport
    assert results["add"] == 5
    assert results["unknown"] == "method_not_found"
    assert results["broadcast"] == {"headline": "hello mushroom"}
    assert results["notes"] == ["to the page"]
    assert results["after_notify"] == 42
    assert service.notes == ["from mushroom"]
    assert results["disconnected"] is True
