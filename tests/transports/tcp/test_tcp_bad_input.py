"""Bad input on a TCP connection: an Error reply when a request id can be recovered, else a prompt close.

Each case is logged once, and a well-behaved client on the same server
keeps getting correct answers meanwhile.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Iterator
from typing import Any

import gevent
import pytest
from helpers.tcp import RawClient, call_quietly, wait_until

pytestmark = pytest.mark.timeout(30)

MAX_MESSAGE_SIZE = 64 * 1024


def tls_client_hello() -> bytes:
    """Return the first bytes a TLS client sends (a real ClientHello record)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="example.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    hello = outgoing.read()
    assert hello[:3] == b"\x16\x03\x01"
    return hello


def random_bytes() -> bytes:
    data = bytearray(random.Random(20240601).randbytes(4096))
    data[0] = 0x9C  # never "[" or "{": the bytes must not be mistaken for JSON by luck
    return bytes(data)


class GoodClient:
    """A client calling the server in a loop in the background, checking every answer."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.answers = 0
        self.wrong: list[Any] = []
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        i = 0
        while True:
            i += 1
            answer = call_quietly(self.engine.request, "echo", i, timeout=5)
            if answer == i:
                self.answers += 1
            else:
                self.wrong.append(answer)
            gevent.sleep(0.002)

    def check(self) -> None:
        """Assert the client got right answers throughout, and one more now."""
        assert self.engine.request("echo", "and now", timeout=5) == "and now"
        self._greenlet.kill()
        assert not self.wrong


@pytest.fixture
def server_and_good_client(tcp_server, tcp_connect) -> Iterator[tuple[Any, GoodClient]]:
    server = tcp_server(max_message_size=MAX_MESSAGE_SIZE, handshake_timeout=5)
    good = GoodClient(tcp_connect(server))
    wait_until(lambda: good.answers >= 3)
    yield server, good
    good.check()


def warnings_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def open_raw(tcp_raw, server: Any, handshake: bool, caplog) -> RawClient:
    raw = tcp_raw(server.address)
    if handshake:
        assert raw.handshake()["resumed"] is False
    caplog.clear()
    return raw


CLOSING_INPUTS = {
    "random-bytes": (random_bytes(), False),
    "http-request": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False),
    "tls-client-hello": (tls_client_hello(), False),
    "invalid-json": (b'[2,1,"echo",}\n', False),
    "truncated-json-line": (b"[1,2,\n", True),
    "invalid-utf8": (b'[2,1,"echo","\xff\xfe"]\n', True),
    "lone-surrogate": (b'[2,1,"echo","\xed\xa0\x80"]\n', False),
    "too-deep": (b"[" * 100 + b"]" * 100 + b"\n", True),
    "object-after-handshake": (b'{"a":1}\n', True),
    "bare-number": (b"42\n", False),
    "bare-number-after-handshake": (b"42\n", True),
    "request-with-string-id": (b'[2,"x","m",null]\n', False),
    "unknown-code": (b"[9,1]\n", True),
    "empty-list": (b"[]\n", False),
    "unsupported-handshake-version": (b'{"rpcengine":99}\n', False),
}


@pytest.mark.parametrize("name", list(CLOSING_INPUTS))
def test_bad_input_without_request_id_closes_promptly_and_is_logged_once(name, tcp_raw, server_and_good_client, caplog):
    server, _ = server_and_good_client
    data, handshake = CLOSING_INPUTS[name]
    caplog.set_level(logging.WARNING)
    raw = open_raw(tcp_raw, server, handshake, caplog)
    raw.send(data)
    elapsed, replies = raw.wait_closed(timeout=2)
    assert elapsed < 0.1, f"closed only after {elapsed:.3f} s"
    # Before closing, the server may only refuse a handshake, send heartbeats, or say goodbye ([-1]).
    assert all((isinstance(reply, dict) and "error" in reply) or reply in ([-1], [0, 0]) for reply in replies), replies
    assert len(warnings_logged(caplog)) == 1, warnings_logged(caplog)


@pytest.mark.parametrize(
    "data",
    [b"[2,5,7,null]\n", b'[2,5,"echo"]\n', b'[2,5,"",null]\n', b'[2,5,"echo",null,"extra"]\n'],
    ids=["method-not-a-string", "too-few-items", "empty-method", "too-many-items"],
)
@pytest.mark.parametrize("handshake", [False, True], ids=["plain", "handshaken"])
def test_invalid_request_with_readable_id_gets_an_error_reply_and_the_connection_stays(
    data, handshake, tcp_raw, server_and_good_client, caplog
):
    server, _ = server_and_good_client
    caplog.set_level(logging.WARNING)
    raw = open_raw(tcp_raw, server, handshake, caplog)
    raw.send(data)
    reply = raw.read_message()
    assert reply[0] == 4 and type(reply[1]) is int and reply[2] == 5, reply
    assert reply[3]["error"] == "invalid_message" and reply[3]["message"]
    raw.send(b'[2,6,"echo","still here"]\n')
    assert raw.read_message()[2:] == [6, "still here"]
    assert len(warnings_logged(caplog)) == 1, warnings_logged(caplog)
    raw.close()


def test_overlong_line_is_refused_long_before_it_is_all_sent(tcp_raw, server_and_good_client, caplog):
    """A 10 MiB line to a server whose max_message_size is 64 KiB: closed before 1 MiB has been sent."""
    server, _ = server_and_good_client
    caplog.set_level(logging.WARNING)
    raw = tcp_raw(server.address, sndbuf=64 * 1024)
    chunk = b"[" + b"7," * (32 * 1024)
    total, sent = 10 * 1024 * 1024, 0
    started = time.monotonic()
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        while sent < total:
            raw.send(chunk)
            sent += len(chunk)
            gevent.sleep(0)  # a network peer does not own our CPU
    assert sent < 1024 * 1024, f"{sent} bytes went out before the server gave up"
    assert time.monotonic() - started < 2
    assert len(warnings_logged(caplog)) == 1, warnings_logged(caplog)
    assert "exceeds" in warnings_logged(caplog)[0]
