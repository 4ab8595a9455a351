"""``python -m rpcengine demo``: a live tour of rpcengine in one command.

It starts the :class:`~rpcengine.cli.demo_service.DemoService` (a shared
counter and chat room) on 127.0.0.1 over TCP and, when
:mod:`transports.websocket` is available, over WebSocket too, with a small
HTTP server for a browser page that watches the broadcasts live. Two
scripted clients, alice (TCP) and bob (WebSocket, or TCP without it), then
show a request, a broadcast, a notification, a server-to-client request, a
remote error, a timeout and introspection (see
:mod:`rpcengine.cli.demo_script`).

The demo ends by itself after the script, or after ``keep_running``
seconds more (alice adds 1 every two seconds meanwhile, so an open page
moves), or on Ctrl-C/SIGTERM; every server is stopped before it returns,
and the demo says that the browser page is gone with them. The page itself
says so too when its connection ends. ``trace`` prints every message the
servers send and receive on stderr (see :mod:`rpcengine.cli.trace`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

import gevent

from dispatchers.method import MethodDispatcher
from dispatchers.middleware import with_middleware
from rpcengine.cli.connect import load_websocket, websocket_available
from rpcengine.cli.demo_script import DemoClient, play, run_script
from rpcengine.cli.demo_service import DemoService
from rpcengine.cli.demo_web import DemoPageServer
from rpcengine.cli.errors import ExitCode
from rpcengine.cli.signals import stop_requested
from rpcengine.cli.trace import Tracer
from rpcengine.cli.urls import format_url
from rpcengine.cli.watch import server_watchers
from transports import tcp

__all__ = ["HOST", "WS_PATH", "run_demo"]

#: The demo listens on the loopback interface only.
HOST = "127.0.0.1"
#: The WebSocket path the demo service is served on.
WS_PATH = "/demo"
#: Seconds between alice's additions while the demo keeps running.
TICK = 2.0


def _start(make: Callable[[int], Any], port: int) -> Any:
    """Start ``make(port)``; if that port is taken, start ``make(0)`` on a free one instead."""
    if port:
        try:
            return make(port).start()
        except OSError:
            pass
    return make(0).start()


class _Demo:
    """The servers and clients of one demo run."""

    def __init__(self, base_port: int, out: TextIO, trace: bool = False) -> None:
        self.out = out
        self.base_port = base_port
        self.hooks, middleware = server_watchers(Tracer() if trace else None)
        self.service = DemoService()
        self.dispatcher = with_middleware(MethodDispatcher(self.service), *middleware)
        self.servers: list[Any] = []
        self.page: DemoPageServer | None = None
        self.ws_url: str | None = None
        self.clients: list[DemoClient] = []

    def port(self, offset: int) -> int:
        """Return the preferred port for the listener at ``offset`` (0: any free port)."""
        return self.base_port + offset if self.base_port else 0

    def start(self) -> None:
        """Start the TCP server and, if the transport exists, the WebSocket server and the page."""
        tcp_server = _start(lambda port: tcp.TcpServer((HOST, port), self.dispatcher, **self.hooks), self.port(0))
        self.servers.append(tcp_server)
        self.tcp_url = format_url("tcp", HOST, tcp_server.address[1])
        if websocket_available():
            websocket = load_websocket()
            page = self.page = _start(lambda port: DemoPageServer((HOST, port), ""), self.port(2))
            # Browsers send the page's origin: admit the demo page, and programs (no Origin), only.
            origins = [f"http://{HOST}:{page.address[1]}", f"http://localhost:{page.address[1]}", None]
            ws_server = _start(
                lambda port: websocket.WebSocketServer(
                    (HOST, port), {WS_PATH: self.dispatcher}, origins=origins, **self.hooks
                ),
                self.port(1),
            )
            self.servers.append(ws_server)
            self.ws_url = page.ws_url = format_url("ws", HOST, ws_server.address[1], WS_PATH)
        self.service.on_serve(self.servers)

    def connect_clients(self) -> tuple[DemoClient, DemoClient]:
        """Connect alice over TCP and bob over WebSocket (or TCP); return them."""
        tcp_address = self.servers[0].address

        def over_tcp(handler: Any) -> Any:
            return tcp.connect(tcp_address[0], tcp_address[1], handler)

        def over_websocket(handler: Any) -> Any:
            return load_websocket().connect(self.ws_url, handler)

        alice = DemoClient("alice").connect(over_tcp)
        self.clients.append(alice)
        bob = DemoClient("bob").connect(over_websocket if self.ws_url else over_tcp)
        self.clients.append(bob)
        return alice, bob

    def print_header(self) -> None:
        """Print where everything listens."""
        say = self.say
        say("rpcengine demo: a shared counter and chat room; every change is broadcast to all clients")
        say()
        say(f"  TCP server        {self.tcp_url}")
        if self.ws_url is not None and self.page is not None:
            say(f"  WebSocket server  {self.ws_url}")
            say(f"  browser page      {self.page_url}")
            say("                    (it shows calls and broadcasts live while the demo runs;")
            say("                    the demo stops after its script: add --keep-running 300 to keep it up)")
        else:
            say("  note: the WebSocket transport (transports.websocket) is not available,")
            say("        so this demo runs over TCP only and there is no browser page")
        say()
        transport = "WebSocket" if self.ws_url else "TCP"
        say(f"alice connects over TCP, bob over {transport}.")
        say()

    @property
    def page_url(self) -> str | None:
        """The browser page's address, or None without the WebSocket transport."""
        return None if self.page is None else f"http://{HOST}:{self.page.address[1]}/"

    def farewell(self) -> None:
        """Say plainly that everything stopped, the browser page with it."""
        self.say()
        self.say("done: every server stopped")
        if self.page_url is not None:
            self.say(
                f"the browser page {self.page_url} is gone with them; rpcengine demo --keep-running 300 keeps it up"
            )

    def say(self, text: str = "") -> None:
        """Print one line of the demo's output."""
        print(text, file=self.out, flush=True)

    def keep_running(self, seconds: float, stop: Any, alice: DemoClient) -> None:
        """Serve ``seconds`` more (or until ``stop``), alice adding 1 every TICK seconds."""
        where = self.page_url or self.tcp_url
        self.say()
        self.say(f"serving {where} for {seconds:g} s more (alice adds 1 every {TICK:g} s); Ctrl-C stops")
        deadline = gevent.get_hub().loop.now() + seconds
        while not stop.is_set():
            remaining = deadline - gevent.get_hub().loop.now()
            if remaining <= 0 or stop.wait(min(TICK, remaining)):
                break
            assert alice.engine is not None
            alice.engine.request("add", 1, timeout=5)

    def stop(self) -> None:
        """Close the clients and stop every server (blocks, yielding, a few seconds at most)."""
        for client in self.clients:
            client.close()
        for server in self.servers:
            server.stop(2.0)
        if self.page is not None:
            self.page.stop(1.0)


def run_demo(
    *, keep_running: float = 0.0, base_port: int = 7300, out: TextIO | None = None, trace: bool = False
) -> int:
    """Run the demo; return exit code 0. Blocks (yields) until it is over.

    ``base_port``, ``base_port + 1`` and ``base_port + 2`` are tried for TCP,
    WebSocket and the page (free ports if taken; ``0``: free ports always).
    ``trace`` prints every message the servers send and receive on stderr.
    """
    demo = _Demo(base_port, out or sys.stdout, trace)
    stop = stop_requested()
    play(demo, lambda alice, bob: run_script(alice, bob, demo.out), keep_running, stop)
    return ExitCode.OK
