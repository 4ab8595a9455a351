"""The discovery responder and discover() on loopback: unicast probes to 127.0.0.1 only, never a broadcast."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import gevent
import gevent.socket
import pytest

from rpcengine import __version__
from rpcengine.discovery import MAX_PROBE_SIZE, encode_probe, new_probe
from transports.discovery import DiscoveryResponder, discover

LOOPBACK = "127.0.0.1"


@pytest.fixture
def responder() -> Iterator[DiscoveryResponder]:
    """A responder for workgroup "lab" on a free port of 127.0.0.1, with a wildcard and a loopback URL."""
    with DiscoveryResponder(
        "alpha", ["tcp://0.0.0.0:7000", "ws://127.0.0.1:8000/rpc"], workgroup="lab", host=LOOPBACK, port=0
    ) as started:
        yield started


def udp_socket(host: str = LOOPBACK) -> gevent.socket.socket:
    sock = gevent.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


def answers(sock: gevent.socket.socket, wait: float) -> list[dict[str, object]]:
    """Every datagram that reaches ``sock`` within ``wait`` seconds, decoded."""
    received = []
    deadline = time.monotonic() + wait
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            received.append(json.loads(sock.recvfrom(4096)[0]))
        except TimeoutError:
            break
    return received


def test_discover_finds_the_responder_with_its_answer(responder: DiscoveryResponder) -> None:
    port = responder.address[1]
    started = time.monotonic()
    [server] = discover(0.5, address=LOOPBACK, port=port)
    assert 0.45 < time.monotonic() - started < 1.5, "discover waits the whole timeout for more answers"
    assert (server.name, server.version, server.workgroup, server.address) == ("alpha", __version__, "lab", LOOPBACK)
    assert server.urls == ("tcp://127.0.0.1:7000", "ws://127.0.0.1:8000/rpc"), "0.0.0.0 became the probed address"
    assert server.as_dict() == {"name": "alpha", "version": __version__, "workgroup": "lab",
                                "urls": list(server.urls), "address": LOOPBACK}  # fmt: skip
    assert [found.name for found in discover(0.3, "lab", address=LOOPBACK, port=port)] == ["alpha"]
    assert discover(0.3, "other", address=LOOPBACK, port=port) == []


def test_the_answer_on_the_wire(responder: DiscoveryResponder) -> None:
    probe = new_probe()
    with udp_socket() as sock:
        sock.sendto(encode_probe(probe), responder.address)
        [answer] = answers(sock, 0.3)
    assert answer == {"rpcengine_discover": 1, "nonce": probe.nonce, "name": "alpha", "version": __version__,
                      "workgroup": "lab", "urls": ["tcp://127.0.0.1:7000", "ws://127.0.0.1:8000/rpc"]}  # fmt: skip


def test_garbage_and_oversize_probes_are_ignored_and_it_keeps_answering(responder: DiscoveryResponder) -> None:
    valid = encode_probe(new_probe())
    oversize = valid[:-1] + b" " * (MAX_PROBE_SIZE + 1 - len(valid)) + b"}"
    garbage = [b"", b"\x00" * 100, b"not json", b"{}", b"[1, 2]", b'{"rpcengine_discover": 1}', b"\xff" * 60000,
               oversize, b"{" * MAX_PROBE_SIZE]  # fmt: skip
    with udp_socket() as sock:
        for datagram in garbage:
            sock.sendto(datagram, responder.address)
        assert answers(sock, 0.3) == []
        sock.sendto(valid, responder.address)
        assert [answer["name"] for answer in answers(sock, 0.3)] == ["alpha"]
    assert (responder.responder.ignored, responder.responder.answered) == (len(garbage), 1)


def test_a_flood_is_answered_at_most_n_per_second_and_others_still_get_answers() -> None:
    max_rate, per_source, flood_seconds = 12, 4, 1.5
    with DiscoveryResponder("alpha", ["tcp://127.0.0.1:7000"], host=LOOPBACK, port=0,
                            max_rate=max_rate, max_source_rate=per_source) as responder:  # fmt: skip
        flooder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a plain socket on a plain thread
        flooder.bind((LOOPBACK, 0))
        sent = [0]

        def flood() -> None:
            probe = encode_probe(new_probe())
            deadline = time.monotonic() + flood_seconds
            while time.monotonic() < deadline:
                flooder.sendto(probe, responder.address)
                sent[0] += 1
                if sent[0] % 50 == 0:
                    time.sleep(0.001)

        thread = threading.Thread(target=flood, daemon=True)
        thread.start()
        try:
            gevent.sleep(0.2)
            # Mid-flood, another sender (127.0.0.2 is loopback too) is answered at once.
            with udp_socket("127.0.0.2") as other:
                started = time.monotonic()
                other.sendto(encode_probe(new_probe()), responder.address)
                other.settimeout(1.0)
                assert json.loads(other.recvfrom(4096)[0])["name"] == "alpha"
                assert time.monotonic() - started < 0.5
            # Many senders together share max_rate.
            senders = [udp_socket(f"127.0.0.{3 + index}") for index in range(8)]
            for sock in senders:
                for _ in range(per_source):
                    sock.sendto(encode_probe(new_probe()), responder.address)
            many = sum(len(answers(sock, 0.05)) for sock in senders)
            for sock in senders:
                sock.close()
        finally:
            with gevent.Timeout(flood_seconds + 5):
                while thread.is_alive():
                    gevent.sleep(0.05)  # the hub keeps running the responder meanwhile
            gevent.sleep(0.1)  # the last answers
        flooder.setblocking(False)
        flooded = 0
        while True:
            try:
                flooder.recvfrom(4096)
            except BlockingIOError:
                break
            flooded += 1
        flooder.close()
        assert sent[0] > 1000, "the flood was a flood"
        assert 1 <= flooded <= per_source * (flood_seconds + 1), (flooded, sent[0])
        assert many <= max_rate - 1, "the other sender already took one answer in this second"
        assert responder.responder.answered <= max_rate * (flood_seconds + 2)
        gevent.sleep(1.1)  # the window slides: a new probe is answered
        assert [server.name for server in discover(0.3, address=LOOPBACK, port=responder.address[1])] == ["alpha"]


def test_with_no_responder_nothing_answers() -> None:
    with udp_socket() as sock:
        port = sock.getsockname()[1]  # a port of ours, that never answers
        assert discover(0.3, address=LOOPBACK, port=port) == []


def test_stop_closes_the_port_and_nothing_answers_after() -> None:
    responder = DiscoveryResponder("alpha", ["tcp://127.0.0.1:7000"], host=LOOPBACK, port=0).start()
    port = responder.address[1]
    with pytest.raises(RuntimeError, match="already"):
        responder.start()
    assert len(discover(0.2, address=LOOPBACK, port=port)) == 1
    responder.stop()
    responder.stop()  # twice is harmless
    assert discover(0.2, address=LOOPBACK, port=port) == []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, port))  # the port is free again


def test_bad_arguments_fail_at_once() -> None:
    with pytest.raises(ValueError):
        DiscoveryResponder("", ["tcp://127.0.0.1:7000"])
    with pytest.raises(ValueError):
        discover(0.1, workgroup="x" * 200, address=LOOPBACK, port=9)
