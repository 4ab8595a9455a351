"""mushroom's wire behaviour on our server, exchange by exchange (mushroom.js drives the same in Chromium)."""

from __future__ import annotations

from typing import Any

import pytest
import ujson
from helpers.http import HttpClient, http
from helpers.tcp import wait_until
from helpers.ws import start_ws_server

from dispatchers import MethodDispatcher, MushroomErrors, with_middleware

pytestmark = pytest.mark.timeout(60)


class Service:
    def rpc_add(self, request: Any) -> int:
        a, b = request.data
        return a + b

    def rpc_crash(self, request: Any) -> None:
        raise ValueError("a bug")


@pytest.fixture
def server():
    handler = with_middleware(MethodDispatcher(Service()), MushroomErrors())
    server = start_ws_server(handler, mushroom="/mushroom", poll_hold=0.5)
    yield server
    server.stop(timeout=1)


def bootstrap(server: Any, transports: list[str]) -> Any:
    body = ujson.dumps({"transports": transports, "auth": None}).encode()
    return http(server.address, "POST", "/mushroom/", body, headers=[("Content-Type", "text/plain")])


def test_the_bootstrap_names_the_first_transport_served(server):
    port = server.address[1]
    answer = bootstrap(server, ["ws", "poll"])
    assert answer.status == 200 and answer.headers["content-type"] == "application/json"
    hello = ujson.loads(answer.body)
    assert hello["transport"] == "ws" and hello["url"].startswith(f"ws://127.0.0.1:{port}/mushroom/")
    hello = ujson.loads(bootstrap(server, ["carrier-pigeon", "poll"]).body)
    assert hello["transport"] == "poll" and hello["url"].startswith(f"http://127.0.0.1:{port}/mushroom/")
    answer = bootstrap(server, ["carrier-pigeon"])
    assert (answer.status, answer.body) == (501, b"No suitable transport found")
    assert http(server.address, "GET", "/mushroom/").status == 405


def test_the_poll_transport_with_mushroom_error_strings(server):
    hello = ujson.loads(bootstrap(server, ["poll"]).body)
    path = "/" + hello["url"].split("/", 3)[3]
    client = HttpClient(server.address)
    try:
        sends = [[2, 0, "add", [2, 3]], [2, 1, "nowhere", None], [2, 2, "crash", None]]
        for message in sends:
            answer = client.request("POST", path, ujson.dumps([message]).encode())
            assert (answer.status, answer.body) == (200, b"null")  # a send is answered at once
        got: list[Any] = []
        while len([m for m in got if m[0] in (3, 4)]) < 3:
            got += ujson.loads(client.request("POST", path, b"[[0, null]]").body)
        replies = {m[2]: m for m in got if m[0] in (3, 4)}
        assert replies[0][0] == 3 and replies[0][3] == 5
        assert replies[1][0] == 4 and replies[1][3] == "rpc_nowhere"
        assert replies[2][0] == 4 and replies[2][3] == "Internal server error"
        assert got[-1] == [0, 2]  # the last id received, after the messages
        last = max(m[1] for m in got if m[0] in (3, 4))
        assert ujson.loads(client.request("POST", path, b"[[0, %d]]" % last).body) == [[0, 2]]  # nothing new
        assert client.request("POST", path, b"[[-1]]").body == b"null"
        wait_until(lambda: len(server.sessions) == 0, 5, what="the session ended by [-1]")
        assert client.request("POST", path, b"[[0, 0]]").status == 404
    finally:
        client.close()
