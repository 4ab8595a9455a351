"""One-line connection errors that name the likely cause, each provoked for real (exit code 4)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from helpers.cli import SERVICE, Served, assert_one_line_error, free_port, host_port, run_cli

websocket = pytest.importorskip("transports.websocket")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """The demo service over TCP and over WebSocket on two paths of one port."""
    served = Served(SERVICE, "tcp://127.0.0.1:0", "ws://127.0.0.1:0/rpc", "ws://127.0.0.1:0/other")
    try:
        urls = served.wait_for(3)
        yield {
            "tcp": next(url for url in urls if url.startswith("tcp://")),
            "rpc": next(url for url in urls if url.endswith("/rpc")),
        }
    finally:
        assert served.stop() == 0


class SilentServer:
    """A TCP server thread that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.stopped = threading.Event()
        threading.Thread(target=self.run, daemon=True).start()

    def run(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_refused_names_nothing_listening() -> None:
    url = f"tcp://127.0.0.1:{free_port()}"
    assert_one_line_error(run_cli("call", url, "get"), 4, f"cannot connect to {url}: Connection refused")


def test_a_silent_server_is_no_answer_in_time_not_a_refusal() -> None:
    silent = SilentServer()
    try:
        url = f"tcp://127.0.0.1:{silent.port}"
        started = time.monotonic()
        line = assert_one_line_error(run_cli("call", url, "get", "--timeout", "0.5"), 4)
        assert line == (
            f"rpcengine: error: no answer from {url} within 0.5 s: the port accepts connections, but nothing answered"
        )
        assert "refused" not in line
        assert time.monotonic() - started < 15
    finally:
        silent.close()


def test_tcp_url_on_a_websocket_port_suggests_the_ws_url(servers: dict[str, str]) -> None:
    host, port = host_port(servers["rpc"])
    line = assert_one_line_error(run_cli("call", f"tcp://{host}:{port}", "get", "--timeout", "5"), 4)
    assert line == (
        f"rpcengine: error: tcp://{host}:{port}: this port speaks HTTP/WebSocket; try ws://{host}:{port}/rpc"
    )


def test_websocket_404_lists_the_paths_served(servers: dict[str, str]) -> None:
    host, port = host_port(servers["rpc"])
    line = assert_one_line_error(run_cli("call", f"ws://{host}:{port}/", "get"), 4)
    assert line == (
        f"rpcengine: error: ws://{host}:{port}/: no WebSocket at path / (HTTP 404); "
        f"the server serves /rpc, /other: try ws://{host}:{port}/rpc"
    )


def test_the_404_body_lists_the_paths() -> None:
    served = Served(SERVICE, "ws://127.0.0.1:0/a", "ws://127.0.0.1:0/b")
    try:
        host, port = host_port(served.wait_for(2)[0])
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(f"GET /nope HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 404")
        assert answer.endswith(b"Not Found. WebSocket paths served: /a, /b\n")
    finally:
        assert served.stop() == 0


def test_ws_url_on_a_tcp_port_suggests_the_tcp_url(servers: dict[str, str]) -> None:
    host, port = host_port(servers["tcp"])
    line = assert_one_line_error(run_cli("call", f"ws://{host}:{port}/rpc", "get", "--timeout", "5"), 4)
    assert line == (
        f"rpcengine: error: ws://{host}:{port}/rpc: this port speaks rpcengine over TCP, not WebSocket; "
        f"try tcp://{host}:{port}"
    )


def test_tls_against_a_plain_port_says_it_does_not_speak_tls(servers: dict[str, str]) -> None:
    host, port = host_port(servers["tcp"])
    line = assert_one_line_error(run_cli("call", f"tls://{host}:{port}", "get", "--timeout", "2"), 4)
    assert line == f"rpcengine: error: tls://{host}:{port}: this port does not speak TLS; try tcp://{host}:{port}"
    assert "SSL" not in line


def test_wss_against_a_plain_websocket_port_says_it_does_not_speak_tls(servers: dict[str, str]) -> None:
    host, port = host_port(servers["rpc"])
    line = assert_one_line_error(run_cli("call", f"wss://{host}:{port}/rpc", "get", "--timeout", "2"), 4)
    assert line.startswith(f"rpcengine: error: wss://{host}:{port}/rpc: this port does not speak TLS")
    assert f"try ws://{host}:{port}/rpc" in line


def test_tcp_against_a_tls_port_suggests_tls(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    served = Served(SERVICE, "tls://127.0.0.1:0", "--certfile", cert, "--keyfile", key)
    try:
        host, port = host_port(served.wait_for(1)[0])
        line = assert_one_line_error(run_cli("call", f"tcp://{host}:{port}", "get", "--timeout", "5"), 4)
        assert line == f"rpcengine: error: tcp://{host}:{port}: this port speaks TLS; try tls://{host}:{port}"
    finally:
        assert served.stop() == 0


def test_an_untrusted_certificate_says_how_to_trust_it(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    served = Served(SERVICE, "tls://127.0.0.1:0", "--certfile", cert, "--keyfile", key)
    try:
        url = served.wait_for(1)[0]
        line = assert_one_line_error(run_cli("call", url, "get"), 4, f"cannot connect to {url}: certificate verify")
        assert "--cafile" in line and "--insecure" in line
    finally:
        assert served.stop() == 0
