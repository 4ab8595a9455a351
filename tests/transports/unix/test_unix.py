"""The Unix-domain socket transport: the socket file's life, peer credentials, the dialects, resume.

The conformance suite runs on it in ``tests/transports/test_conformance.py``;
the command line over ``unix:`` URLs in ``tests/cli/test_unix_cli.py``.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.socket
import pytest
import ujson
from helpers.tcp import echo_registry, wait_until

from rpcengine.errors import HandshakeError
from transports.session.client import ReconnectPolicy
from transports.unix import MAX_PATH_BYTES, AddressInUse, PeerCredentials, UnixServer, connect

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[str]:
    """A socket path in a fresh folder (short enough for sun_path)."""
    path = tmp_path / "rpc.sock"
    if len(os.fsencode(str(path))) > MAX_PATH_BYTES:
        pytest.skip("the temporary folder's path is too long for a Unix socket")
    yield str(path)


@pytest.fixture
def servers() -> Iterator[list[UnixServer]]:
    """Servers a test starts; each is stopped afterwards."""
    started: list[UnixServer] = []
    yield started
    for server in started:
        server.stop(timeout=1)


def serve(servers: list[UnixServer], path: str, **options: Any) -> UnixServer:
    server = UnixServer(path, echo_registry(), **options).start()
    servers.append(server)
    return server


def echo_through(path: str, value: Any = "hi", **options: Any) -> Any:
    engine = connect(path, **options)
    try:
        return engine.request("echo", value, timeout=5)
    finally:
        engine.close()


def dead_socket_file(path: str) -> None:
    """Leave a socket file as a server that died leaves it: bound, then closed, never removed."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(1)
    sock.close()


# -- the socket file


def test_the_socket_file_is_created_with_mode_0600(sock_path: str, servers: list[UnixServer]) -> None:
    old_umask = os.umask(0o000)  # the widest umask: the mode is the server's doing, not the umask's
    try:
        serve(servers, sock_path)
    finally:
        os.umask(old_umask)
    info = os.stat(sock_path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert echo_through(sock_path) == "hi"


def test_mode_option_sets_other_permissions(sock_path: str, servers: list[UnixServer]) -> None:
    serve(servers, sock_path, mode=0o660)
    assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o660


def test_a_stale_socket_file_is_replaced(sock_path: str, servers: list[UnixServer]) -> None:
    dead_socket_file(sock_path)
    with pytest.raises(ConnectionRefusedError):  # the file is there and nobody answers on it
        connect(sock_path, connect_timeout=2)
    serve(servers, sock_path)
    assert echo_through(sock_path) == "hi"


def test_a_live_servers_socket_is_refused(sock_path: str, servers: list[UnixServer]) -> None:
    first = serve(servers, sock_path)
    with pytest.raises(AddressInUse) as caught:
        UnixServer(sock_path, echo_registry()).start()
    assert caught.value.errno == errno.EADDRINUSE
    assert caught.value.filename == sock_path
    assert sock_path in str(caught.value) and "already listens" in str(caught.value)
    # The live server's file is untouched and it goes on serving.
    assert os.path.exists(sock_path) and first.accepting
    assert echo_through(sock_path) == "hi"


def test_a_path_that_is_not_a_socket_is_never_replaced(sock_path: str) -> None:
    Path(sock_path).write_text("precious")
    with pytest.raises(FileExistsError, match="not a socket"):
        UnixServer(sock_path, echo_registry()).start()
    assert Path(sock_path).read_text() == "precious"


def test_the_file_is_removed_on_stop(sock_path: str) -> None:
    server = UnixServer(sock_path, echo_registry()).start()
    assert echo_through(sock_path) == "hi"
    server.stop(timeout=1)
    assert not os.path.exists(sock_path)


def test_the_file_is_removed_after_an_exception_in_the_with_block(sock_path: str) -> None:
    with pytest.raises(RuntimeError, match="boom"), UnixServer(sock_path, echo_registry()):
        assert os.path.exists(sock_path)
        raise RuntimeError("boom")
    assert not os.path.exists(sock_path)


def test_stop_leaves_a_successors_file_alone(sock_path: str, servers: list[UnixServer]) -> None:
    first = UnixServer(sock_path, echo_registry()).start()
    os.unlink(sock_path)  # somebody removed it, and a new server took the path
    serve(servers, sock_path)
    first.stop(timeout=1)
    assert os.path.exists(sock_path)
    assert echo_through(sock_path) == "hi"


def test_a_path_over_the_sun_path_limit_raises_a_clear_error(tmp_path: Path) -> None:
    path = "/tmp/" + "x" * 120 + ".sock"
    with pytest.raises(ValueError, match=r"too long: 130 bytes, the limit is 107"):
        UnixServer(path, echo_registry())
    with pytest.raises(ValueError, match="too long"):
        connect(path)


def test_connecting_to_a_missing_socket_raises_file_not_found(sock_path: str) -> None:
    with pytest.raises(FileNotFoundError):
        connect(sock_path, connect_timeout=2)


# -- abstract names


def test_an_abstract_name_serves_without_a_file(servers: list[UnixServer]) -> None:
    name = f"@rpcengine-test-{os.getpid()}"
    server = serve(servers, name)
    assert server.address == name
    assert echo_through(name, "abstract") == "abstract"
    with pytest.raises(AddressInUse, match=name):
        UnixServer(name, echo_registry()).start()
    server.stop(timeout=1)
    servers.remove(server)
    serve(servers, name)  # the name is free again once its server stopped
    assert echo_through(name) == "hi"


# -- peer credentials


def test_peer_credentials_reach_authenticate_and_the_session(sock_path: str, servers: list[UnixServer]) -> None:
    seen: list[tuple[Any, Any]] = []
    sessions: list[Any] = []

    def authenticate(hello: Any, peer: Any) -> bool:
        seen.append((hello, peer))
        return True

    serve(servers, sock_path, authenticate=authenticate, on_connect=sessions.append)
    engine = connect(sock_path)
    try:
        assert engine.request("echo", 1, timeout=5) == 1
        mine = PeerCredentials(os.getpid(), os.getuid(), os.getgid())
        (hello, peer), session = seen[0], sessions[0]
        assert hello is not None and peer == mine
        assert session.peer_address == mine
        assert engine.transport.link.peer_address == mine  # the client sees the server's (here: the same process)
    finally:
        engine.close()


def test_authenticate_may_refuse_by_uid(sock_path: str, servers: list[UnixServer]) -> None:
    serve(servers, sock_path, authenticate=lambda hello, peer: peer.uid == os.getuid() + 1)
    with pytest.raises(HandshakeError, match="authentication failed"):
        connect(sock_path)


# -- dialects and sessions


def test_a_jsonrpc_client_is_answered_as_over_tcp(sock_path: str, servers: list[UnixServer]) -> None:
    serve(servers, sock_path)
    sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(sock_path)
    try:
        sock.sendall(b'{"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 7}\n')
        buffer = b""
        while not buffer.endswith(b"\n"):
            data = sock.recv(65536)
            assert data, "the server closed the connection"
            buffer += data
        answer = ujson.loads(buffer)
        assert answer["jsonrpc"] == "2.0" and answer["id"] == 7 and "result" in answer, answer
    finally:
        sock.close()


def test_a_plain_line_client_is_served(sock_path: str, servers: list[UnixServer]) -> None:
    serve(servers, sock_path)
    assert echo_through(sock_path, [1, 2], handshake=False) == [1, 2]


def test_a_session_resumes_after_its_connection_is_cut(sock_path: str, servers: list[UnixServer]) -> None:
    server = serve(servers, sock_path)
    policy = ReconnectPolicy(initial_delay=0.01, max_delay=0.1, give_up_after=10)
    engine = connect(sock_path, reconnect=policy)
    try:
        assert engine.request("echo", "before", timeout=5) == "before"
        session_id, link = engine.transport.session_id, engine.transport.link
        link.sock.shutdown(socket.SHUT_RDWR)
        wait_until(lambda: engine.transport.link is not link and engine.transport.link is not None, what="redial")
        assert engine.request("echo", "after", timeout=5) == "after"
        assert engine.transport.session_id == session_id
        assert len(server.sessions) == 1
    finally:
        engine.close()
