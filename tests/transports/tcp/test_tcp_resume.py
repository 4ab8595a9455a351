"""A connection cut in the middle of 1,000 messages: the client resumes and each is handled exactly once.

Two ways to cut: the client's own socket shut down, or a proxy between
client and server that resets both sides (losing whatever it had in flight).
"""

from __future__ import annotations

import random
import socket
from typing import Any

import gevent
import pytest
from helpers.tcp import Recorder, call_quietly, wait_until

from transports.session.client import ReconnectPolicy

pytestmark = pytest.mark.timeout(60)

TOTAL, CUT_AT = 1000, 500
POLICY = ReconnectPolicy(initial_delay=0.01, max_delay=0.1, give_up_after=20)


class Cutter:
    """Cuts the client's connection when the server handler has seen its CUT_AT-th call."""

    def __init__(self, how: str, proxy: Any) -> None:
        self.how = how
        self.proxy = proxy
        self.client: Any = None
        self.seen = 0
        self.cut_link: Any = None

    def __call__(self, request: Any) -> None:
        self.seen += 1
        if self.seen != CUT_AT:
            return
        self.cut_link = self.client.transport.link
        if self.how == "proxy":
            self.proxy.cut()
        else:
            self.cut_link.sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture(params=["client-socket-shutdown", "proxy-reset"])
def cut_setup(request, tcp_server, tcp_proxy, tcp_connect):
    """Return (server, client, recorder, cutter, connect_count) for one way of cutting."""
    how = "proxy" if request.param == "proxy-reset" else "shutdown"
    rng = random.Random(11)
    connects: list[Any] = []
    cutter = Cutter(how, None)
    recorder = Recorder(on_call=cutter, delay=lambda: rng.choice((0, 0, 0, 0.001)))
    # A small max_buffer bounds the server's read-ahead while its handlers are busy, so that the cut
    # comes while the client still has messages the server has not received.
    server = tcp_server(recorder, max_concurrency=8, max_buffer=4096, on_connect=connects.append)
    address = server.address
    if how == "proxy":
        cutter.proxy = tcp_proxy(server.address)
        address = cutter.proxy.address
    client = tcp_connect(address, reconnect=POLICY)
    cutter.client = client
    return server, client, recorder, cutter, connects


def assert_resumed(server, client, cutter, connects, session_id: str, caplog) -> None:
    """The cut happened, unacknowledged messages were sent again, and the same session carried on."""
    assert cutter.cut_link is not None and cutter.cut_link.closed, "the connection was never cut"
    assert client.transport.link is not None and client.transport.link is not cutter.cut_link
    assert client.transport.session_id == session_id
    assert [s.session_id for s in server.sessions] == [session_id]
    assert len(connects) == 1, "the server started a new session instead of resuming"
    if cutter.proxy is not None:
        assert cutter.proxy.accepted == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("session resumed from" in m for m in messages)
    assert not any(session_id in m for m in messages), "a session id was logged"
    assert any("resending" in m and "unacknowledged" in m for m in messages), "nothing had to be sent again"


def test_cut_at_request_500_of_1000_each_handled_once_and_answered(cut_setup, caplog):
    caplog.set_level("INFO", logger="transports")
    server, client, recorder, cutter, connects = cut_setup
    session_id = client.transport.session_id
    calls = [gevent.spawn(call_quietly, client.request, "call", i, timeout=30) for i in range(TOTAL)]
    gevent.joinall(calls, timeout=40)
    assert [call.value for call in calls] == list(range(TOTAL))
    assert sorted(key for _, key in recorder.counts) == list(range(TOTAL))
    assert set(recorder.counts.values()) == {1}, "some request was handled twice"
    assert_resumed(server, client, cutter, connects, session_id, caplog)


def test_cut_at_notification_500_of_1000_each_handled_once(cut_setup, caplog):
    caplog.set_level("INFO", logger="transports")
    server, client, recorder, cutter, connects = cut_setup
    session_id = client.transport.session_id
    for i in range(TOTAL):
        client.notify("note", i)
    wait_until(lambda: recorder.total("note") >= TOTAL, timeout=30, what="all notifications handled")
    # Anything sent twice would be read before the answer to this later request.
    assert client.request("ping", "last", timeout=10) == "last"
    assert sorted(key for method, key in recorder.counts if method == "note") == list(range(TOTAL))
    assert {n for (method, _), n in recorder.counts.items() if method == "note"} == {1}
    assert_resumed(server, client, cutter, connects, session_id, caplog)


def test_a_stolen_session_id_gets_a_fresh_session_and_neither_id_nor_secret_is_logged(
    tcp_server, tcp_connect, tcp_raw, caplog
):
    """D5: a resume with the id alone, or with a guessed secret, gets a new session; the logs name neither."""
    caplog.set_level("DEBUG")
    server = tcp_server()
    victim = tcp_connect(server, reconnect=POLICY)
    assert victim.request("echo", "mine", timeout=5) == "mine"
    session_id, secret = victim.transport.session_id, victim.transport.secret
    assert session_id and secret and secret != session_id
    for extra in (b"", b', "secret": "guess"', b', "secret": "%s"' % session_id.encode()):
        thief = tcp_raw(server.address)
        thief.send(b'{"rpcengine": 1, "session": "%s", "ack": 0%s}\n' % (session_id.encode(), extra))
        answer = thief.read_message()
        assert answer["resumed"] is False and answer["session"] != session_id, answer
        thief.close(reset=True)
    # The victim goes on with its own session, across a real resume too.
    victim.transport.link.sock.shutdown(socket.SHUT_RDWR)
    wait_until(lambda: victim.transport.link is not None and not victim.transport.link.closed, 10, what="resumed")
    assert victim.request("echo", "still mine", timeout=5) == "still mine"
    assert victim.transport.session_id == session_id
    messages = [record.getMessage() for record in caplog.records]
    assert any("resume refused" in m for m in messages) and any("session resumed from" in m for m in messages)
    leaked = [m for m in messages if session_id in m or secret in m]
    assert not leaked, leaked
