"""Who may open a WebSocket: same-origin pages by default, Host checked against the served names.

Raw HTTP upgrade requests on a loopback server (so that a test chooses
every header, or leaves it out), the rpcengine client's ``origin=``, and
:class:`~transports.websocket.origin.OriginPolicy` on its own (sans I/O).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import gevent.socket
import pytest
from helpers.tcp import ipv6_loopback_available
from helpers.ws import start_ws_server, ws_connect_fixture, ws_server_fixture  # noqa: F401
from websockets.datastructures import Headers

from rpcengine.errors import HandshakeError
from transports.websocket import WebSocketServer, connect
from transports.websocket.origin import ANY, OriginPolicy

UPGRADE = [
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
]


def status_of(server: WebSocketServer, headers: Sequence[str], path: str = "/", upgrade: bool = True) -> int:
    """Send one HTTP request with exactly these header lines; return the status code of the answer."""
    host, port = server.address[:2]
    request = "\r\n".join([f"GET {path} HTTP/1.1", *headers, *(UPGRADE if upgrade else []), "", ""])
    with gevent.socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(request.encode())
        status_line = sock.makefile("rb").readline().decode()
    assert status_line.startswith("HTTP/1.1 "), status_line
    return int(status_line.split()[1])


def local(server: WebSocketServer, host: str = "127.0.0.1") -> str:
    """Return ``host:port`` of the server."""
    return f"{host}:{server.address[1]}"


# -- the defaults, over a real socket ---------------------------------------------------


def test_cross_site_upgrade_gets_403_by_default(ws_server):
    server = ws_server()
    assert status_of(server, [f"Host: {local(server)}", "Origin: https://evil.example"]) == 403


def test_origin_null_gets_403_by_default(ws_server):
    server = ws_server()
    assert status_of(server, [f"Host: {local(server)}", "Origin: null"]) == 403


@pytest.mark.parametrize("origin", [None, "http://evil.example:{port}"])
def test_dns_rebinding_host_gets_421(ws_server, origin):
    server = ws_server()
    port = server.address[1]
    headers = [f"Host: evil.example:{port}"]
    if origin is not None:
        headers.append(f"Origin: {origin.format(port=port)}")  # the page's own origin: same-origin for the browser
    assert status_of(server, headers) == 421


def test_upgrade_without_host_gets_400(ws_server):
    server = ws_server()
    assert status_of(server, []) == 400
    assert status_of(server, [f"Origin: http://{local(server)}"]) == 400


def test_upgrade_with_two_hosts_gets_400(ws_server):
    server = ws_server()
    assert status_of(server, [f"Host: {local(server)}", f"Host: {local(server, 'localhost')}"]) == 400


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LocalHost"])
def test_same_origin_page_is_accepted(ws_server, name):
    server = ws_server()
    assert status_of(server, [f"Host: {local(server, name)}", f"Origin: http://{local(server, name)}"]) == 101


@pytest.mark.parametrize(
    "origin",
    [
        "https://{host}",  # another scheme
        "http://127.0.0.1:{other}",  # another port of the same machine
        "http://localhost:{port}",  # another name than the request's Host
        "http://127.0.0.1",  # default port 80
        "http://{host}/",  # not an origin
        "http://user@{host}",
    ],
)
def test_other_origins_of_the_same_machine_get_403(ws_server, origin):
    server = ws_server()
    port = server.address[1]
    origin = origin.format(host=local(server), port=port, other=port + 1)
    assert status_of(server, [f"Host: {local(server)}", f"Origin: {origin}"]) == 403


def test_no_origin_is_accepted(ws_server, ws_connect):
    server = ws_server()
    assert status_of(server, [f"Host: {local(server)}"]) == 101
    assert ws_connect(server).request("echo", "program", timeout=5) == "program"


def test_client_with_the_server_own_origin_works_and_another_is_refused(ws_server, ws_connect):
    server = ws_server()
    assert ws_connect(server, origin=f"http://{local(server)}").request("echo", 1, timeout=5) == 1
    with pytest.raises(HandshakeError, match="403"):
        connect(server.url(), origin="https://evil.example")


def test_origins_star_accepts_every_site_but_still_checks_host(ws_server, ws_connect):
    server = ws_server(origins="*")
    for origin in ("https://evil.example", "null"):
        assert status_of(server, [f"Host: {local(server)}", f"Origin: {origin}"]) == 101
    assert ws_connect(server, origin="https://evil.example").request("echo", 2, timeout=5) == 2
    assert status_of(server, [f"Host: evil.example:{server.address[1]}", "Origin: https://evil.example"]) == 421


def test_hosts_adds_names_and_star_accepts_every_host(ws_server):
    server = ws_server(hosts=["app.example"])
    port = server.address[1]
    assert status_of(server, [f"Host: app.example:{port}", f"Origin: http://app.example:{port}"]) == 101
    assert status_of(server, [f"Host: {local(server)}"]) == 101
    assert status_of(server, [f"Host: evil.example:{port}"]) == 421
    anything = ws_server(hosts="*")
    assert status_of(anything, [f"Host: evil.example:{port}"]) == 101
    assert status_of(anything, [f"Host: evil.example:{port}", "Origin: https://other.example"]) == 403


def test_origin_list_keeps_its_meaning(ws_server):
    server = ws_server(origins=["https://app.example", re.compile(r"https://[a-z]+\.app\.example"), None])
    host = f"Host: {local(server)}"
    assert status_of(server, [host, "Origin: https://app.example"]) == 101
    assert status_of(server, [host, "Origin: https://eu.app.example"]) == 101
    assert status_of(server, [host]) == 101
    assert status_of(server, [host, f"Origin: http://{local(server)}"]) == 403  # not listed
    assert status_of(server, [host, "Origin: https://eu.app.example.evil"]) == 403  # full match only


def test_origin_list_without_none_refuses_programs(ws_server):
    server = ws_server(origins=["https://app.example"])
    assert status_of(server, [f"Host: {local(server)}"]) == 403


def test_static_script_is_served_whatever_the_host_and_origin(ws_server):
    server = ws_server()
    for headers in ([], ["Host: evil.example", "Origin: https://evil.example"], [f"Host: {local(server)}"]):
        assert status_of(server, headers, path="/rpcengine.js", upgrade=False) in (200, 404)  # 404: not installed


def test_malformed_upgrades_get_their_own_status_first(ws_server):
    server = ws_server()
    evil = ["Host: evil.example", "Origin: https://evil.example"]
    assert status_of(server, evil, path="/nowhere") == 404
    assert status_of(server, evil, upgrade=False) == 426  # a plain GET of a WebSocket path
    assert status_of(server, [*evil, "Upgrade: websocket", "Connection: Upgrade"], upgrade=False) == 400  # no key


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback")
def test_ipv6_loopback_server_accepts_its_own_pages():
    server = start_ws_server(host="::1")
    try:
        port = server.address[1]
        for name in ("[::1]", "localhost", "127.0.0.1"):
            assert status_of(server, [f"Host: {name}:{port}", f"Origin: http://{name}:{port}"]) == 101, name
        assert status_of(server, [f"Host: [::1]:{port}", f"Origin: http://[::2]:{port}"]) == 403
    finally:
        server.stop(timeout=1)


def test_bad_option_strings_are_refused():
    with pytest.raises(ValueError, match="origins"):
        WebSocketServer(("127.0.0.1", 0), lambda request: None, origins="https://app.example")
    with pytest.raises(ValueError, match="hosts"):
        WebSocketServer(("127.0.0.1", 0), lambda request: None, hosts="app.example")


# -- OriginPolicy, sans I/O --------------------------------------------------------------


def check(policy: OriginPolicy, **headers: str | list[str]) -> int | None:
    """Return the status a request with these headers is refused with, or None if accepted."""
    pairs = [
        (name, value) for name, values in headers.items() for value in ([values] if isinstance(values, str) else values)
    ]
    refusal = policy.check(Headers(pairs))
    return None if refusal is None else refusal.status.value


def test_policy_secure_server_maps_wss_to_https():
    policy = OriginPolicy(["127.0.0.1"], secure=True)
    assert check(policy, Host="127.0.0.1:8443", Origin="https://127.0.0.1:8443") is None
    assert check(policy, Host="127.0.0.1:8443", Origin="http://127.0.0.1:8443") == 403
    assert check(policy, Host="127.0.0.1", Origin="https://127.0.0.1:443") is None  # default ports
    assert check(policy, Host="127.0.0.1:443", Origin="https://127.0.0.1") is None
    assert check(OriginPolicy(["127.0.0.1"]), Host="127.0.0.1", Origin="http://127.0.0.1:80") is None


def test_policy_served_names():
    assert OriginPolicy(["127.0.0.1"]).names == {"127.0.0.1", "localhost", "::1"}
    assert OriginPolicy(["192.0.2.7"]).names == {"192.0.2.7"}
    assert OriginPolicy(["192.0.2.7"], hosts=["App.Example", "[2001:db8::1]"]).names == {
        "192.0.2.7",
        "app.example",
        "2001:db8::1",
    }
    assert OriginPolicy(["localhost", "127.0.0.1"]).names == {"localhost", "127.0.0.1", "::1"}


def test_policy_wildcard_bind_accepts_any_address_but_only_known_names():
    for bound in ("0.0.0.0", "::", ""):
        policy = OriginPolicy([bound])
        assert check(policy, Host="192.0.2.7:8000", Origin="http://192.0.2.7:8000") is None, bound
        assert check(policy, Host="[2001:db8::1]:8000") is None, bound
        assert check(policy, Host="localhost:8000") is None, bound
        assert check(policy, Host="evil.example:8000") == 421, bound
    assert check(OriginPolicy(["192.0.2.7"]), Host="192.0.2.8:8000") == 421


@pytest.mark.parametrize("host", ["127.0.0.1:port", "[::1", "user@127.0.0.1", "127.0.0.1/x", ""])
def test_policy_malformed_host_gets_400(host):
    assert check(OriginPolicy(["127.0.0.1"]), Host=host) == 400


def test_policy_several_origins_get_400():
    policy = OriginPolicy(["127.0.0.1"], origins=ANY)
    assert check(policy, Host="127.0.0.1", Origin=["http://127.0.0.1", "http://127.0.0.1"]) == 400


# -- the HTTP layer on the same port ----------------------------------------------------


def post_status(server: WebSocketServer, headers: Sequence[str], path: str = "/rpc") -> int:
    """POST one call to ``path`` with exactly these header lines (plus the body's); return the status code."""
    body = b'[[2, 1, "echo", 1]]'
    head = [f"POST {path} HTTP/1.1", *headers, "Content-Type: application/json", f"Content-Length: {len(body)}"]
    host, port = server.address[:2]
    with gevent.socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall("\r\n".join([*head, "", ""]).encode() + body)
        status_line = sock.makefile("rb").readline().decode()
    assert status_line.startswith("HTTP/1.1 "), status_line
    return int(status_line.split()[1])


@pytest.mark.parametrize("path", ["/rpc", "/jsonrpc"])
def test_http_calls_are_same_origin_by_default_and_check_host(ws_server, path):
    """D6 for plain HTTP: a cross-site POST gets 403, a DNS-rebinding Host 421, no Host 400; programs, page work."""
    server = ws_server()
    host = f"Host: {local(server)}"
    assert post_status(server, [host, "Origin: https://evil.example"], path) == 403
    assert post_status(server, [host, "Origin: null"], path) == 403
    assert post_status(server, [f"Host: evil.example:{server.address[1]}"], path) == 421
    assert post_status(server, [], path) == 400
    assert post_status(server, [host], path) == 200  # a program: no Origin
    assert post_status(server, [host, f"Origin: http://{local(server)}"], path) == 200  # the server's own page
