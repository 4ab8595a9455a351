"""Long-poll sessions on the session core: bootstrap, holds, a newer poll, reaping, and exactly-once through losses."""

from __future__ import annotations

from typing import Any

import gevent
import pytest
import ujson
from helpers.conformance import FakeClock
from helpers.http import HttpClient, LossyProxy, http
from helpers.tcp import wait_until
from helpers.ws import start_ws_server

from dispatchers import MethodDispatcher
from transports.http.client import connect_poll
from transports.http.poll import SECRET_HEADER

pytestmark = pytest.mark.timeout(60)


class Service:
    def rpc_add(self, request: Any) -> int:
        a, b = request.data
        return a + b

    def rpc_ask_client(self, request: Any) -> Any:
        return request.engine.request("echo", request.data, timeout=5)


class ClientService:
    def __init__(self) -> None:
        self.news: list[Any] = []

    def rpc_echo(self, request: Any) -> Any:
        return request.data

    def rpc_news(self, notification: Any) -> None:
        self.news.append(notification.data)


def bootstrap(server: Any, **extra: Any) -> dict[str, Any]:
    answer = http(
        server.address, "POST", "/rpc/session", ujson.dumps({"rpcengine": 1, "session": None, **extra}).encode()
    )
    assert answer.status == 200, answer
    return ujson.loads(answer.body)  # type: ignore[no-any-return]


def poll(client: HttpClient, hello: dict[str, Any], body: bytes) -> Any:
    answer = client.request("POST", hello["poll"]["url"], body, headers=[(SECRET_HEADER, hello["secret"])])
    assert answer.status == 200, answer
    return ujson.loads(answer.body)


def test_a_poll_client_calls_and_is_called_and_hears_broadcasts():
    server = start_ws_server(MethodDispatcher(Service()), poll_hold=2.0)
    service = ClientService()
    client = connect_poll(f"http://127.0.0.1:{server.address[1]}/rpc", MethodDispatcher(service))
    try:
        assert client.request("add", [2, 3], timeout=5) == 5
        assert client.request("ask_client", "ping", timeout=5) == "ping"  # server -> client over the poll
        server.sessions.notify("news", "hello")
        wait_until(lambda: service.news == ["hello"], 5, what="the broadcast")
    finally:
        client.close()
    wait_until(lambda: len(server.sessions) == 0, 5, what="the session ended by the client's Disconnect")
    server.stop(timeout=1)


def test_an_idle_poll_returns_the_ack_after_its_hold():
    server = start_ws_server(MethodDispatcher(Service()), poll_hold=0.3)
    try:
        hello = bootstrap(server)
        assert hello["poll"]["hold"] == 0.3
        client = HttpClient(server.address)
        assert poll(client, hello, b'[2,1,"add",[2,3]]\n') == [[0, 1]]  # a send: answered at once
        assert poll(client, hello, b"[0,0]\n") == [[3, 1, 1, 5], [0, 1]]  # the answer waited in the outbox
        assert poll(client, hello, b"[0,1]\n") == [[0, 1]]  # nothing to say: the hold passes
        client.close()
    finally:
        server.stop(timeout=1)


def test_a_newer_poll_makes_the_older_one_return_at_once():
    server = start_ws_server(MethodDispatcher(Service()), poll_hold=20.0)
    try:
        hello = bootstrap(server)
        first, second = HttpClient(server.address), HttpClient(server.address)
        held = gevent.spawn(poll, first, hello, b"[0,0]\n")
        session = server.sessions.get(hello["session"])
        wait_until(lambda: session.link is not None, 5, what="the first poll held")
        loop = gevent.get_hub().loop
        later = gevent.spawn(poll, second, hello, b"[0,0]\n")
        loop.update_now()
        started = loop.now()
        held.join(5)
        loop.update_now()
        assert held.value == [[0, 0]]
        assert loop.now() - started < 0.05
        assert not session.closed  # not an error: the session goes on with the newer poll
        server.sessions.notify("news", 1)
        later.join(5)
        assert later.value == [[1, 1, "news", 1], [0, 0]]
        first.close()
        second.close()
    finally:
        server.stop(timeout=1)


def test_unknown_sessions_and_wrong_secrets_get_404():
    server = start_ws_server(MethodDispatcher(Service()))
    try:
        hello = bootstrap(server)
        url = hello["poll"]["url"]
        assert http(server.address, "POST", url, b"[0,0]\n", headers=[(SECRET_HEADER, "wrong")]).status == 404
        assert http(server.address, "POST", url, b"[0,0]\n").status == 404
        assert http(server.address, "POST", "/rpc/session/nobody", b"[0,0]\n").status == 404
    finally:
        server.stop(timeout=1)


def test_a_refused_bootstrap_gets_401_and_auth_sees_the_hello():
    seen = []

    def authenticate(hello: Any, peer: Any) -> bool:
        seen.append(hello.extra)
        return hello.extra.get("token") == "good"

    server = start_ws_server(MethodDispatcher(Service()), authenticate=authenticate)
    try:
        body = b'{"rpcengine": 1, "session": null, "token": "bad"}'
        answer = http(server.address, "POST", "/rpc/session", body)
        assert answer.status == 401 and answer.headers["www-authenticate"] == "Rpcengine"
        assert bootstrap(server, token="good")["session"]
        assert seen == [{"token": "bad"}, {"token": "good"}]
    finally:
        server.stop(timeout=1)


def test_an_abandoned_session_is_reaped_at_resume_grace():
    clock = FakeClock()
    server = start_ws_server(MethodDispatcher(Service()), clock=clock, resume_grace=10.0)
    try:
        hello = bootstrap(server)
        session = server.sessions.get(hello["session"])
        assert session is not None and session.detached
        clock.advance(9.5)
        session.handle_timer(clock())
        assert not session.closed
        clock.advance(1.0)
        session.handle_timer(clock())
        assert session.closed
        assert http(server.address, "POST", hello["poll"]["url"], b"[0,0]\n").status == 404
    finally:
        server.stop(timeout=1)


def test_a_thousand_notifications_arrive_once_and_in_order_through_a_lossy_proxy():
    server = start_ws_server(MethodDispatcher(Service()), poll_hold=5.0)
    proxy = LossyProxy(server.address, drop_rate=0.2).start()
    service = ClientService()
    client = connect_poll(f"http://127.0.0.1:{proxy.address[1]}/rpc", MethodDispatcher(service))
    try:
        assert client.request("add", [1, 1], timeout=5) == 2
        for batch in range(100):  # ten at a time, so that a hundred poll answers or more carry them
            for n in range(batch * 10, batch * 10 + 10):
                server.sessions.notify("news", n)
            wait_until(lambda: len(service.news) >= batch * 10 + 10, 10, what=f"batch {batch}")  # noqa: B023
        assert service.news == list(range(1000))
        print(f"poll answers forwarded {proxy.forwarded}, dropped {proxy.dropped}")
        assert proxy.dropped >= 10  # what was lost was resent by the next poll, and seen once
    finally:
        client.close()
        proxy.stop()
        server.stop(timeout=1)


def test_a_stopping_server_tells_poll_clients_at_once():
    server = start_ws_server(MethodDispatcher(Service()), poll_hold=20.0)
    client = connect_poll(f"http://127.0.0.1:{server.address[1]}/rpc")
    assert client.request("add", [1, 2], timeout=5) == 3
    session = next(iter(server.sessions))
    wait_until(lambda: session.link is not None, 5, what="a poll held")
    server.stop(timeout=1)
    wait_until(lambda: client.closed, 5, what="the client told by the held poll")
