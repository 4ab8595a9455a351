"""The demo's scripted clients: alice and bob show each kind of exchange, step by step.

Each client is an Engine whose rpc handler is a :class:`~dispatchers.Registry`
answering the server's ``whoami`` request and collecting the
``counter.changed`` and ``chat.message`` broadcasts. The script waits for
each broadcast to arrive before it prints it, so the output is always in
the same order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TextIO

import gevent
from gevent.queue import Empty, Queue

from dispatchers import Registry
from rpcengine.engine import Engine
from rpcengine.errors import RequestException, RequestTimeout

__all__ = ["DemoClient", "run_script"]

#: How long the script waits for an answer or a broadcast before it gives up.
WAIT = 5.0


def show(value: Any) -> str:
    """Return ``value`` as compact JSON for the demo's output."""
    return json.dumps(value, ensure_ascii=False)


class DemoClient:
    """A named client of the demo service that records what the server sends it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.inbox: Queue = Queue()
        self.asked: list[str] = []
        self.engine: Engine | None = None
        self.handler = Registry()
        self.handler.add("whoami", self.whoami)
        self.handler.add("counter.changed", self.received)
        self.handler.add("chat.message", self.received)

    def whoami(self, request: Any) -> str:
        """Answer the server's request for this client's name."""
        self.asked.append(request.method)
        return self.name

    def received(self, notification: Any) -> None:
        """Keep a broadcast for the script to print."""
        self.inbox.put((notification.method, notification.data))

    def next_broadcast(self) -> tuple[str, Any]:
        """Wait (yielding) for the next broadcast; raise RuntimeError if none comes in time."""
        try:
            return self.inbox.get(timeout=WAIT)
        except Empty:
            raise RuntimeError(f"{self.name} got no broadcast within {WAIT} s") from None

    def connect(self, opener: Callable[[Any], Engine]) -> DemoClient:
        """Connect with ``opener(rpc_handler)``; return self."""
        self.engine = opener(self.handler)
        return self

    def close(self) -> None:
        """Close the connection (does not block)."""
        if self.engine is not None:
            self.engine.close()


def run_script(alice: DemoClient, bob: DemoClient, out: TextIO) -> None:
    """Run the demo's steps with two connected clients, printing each; raise if one misbehaves."""
    a, b = alice.engine, bob.engine
    assert a is not None and b is not None

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    def broadcast_received() -> None:
        for client in (alice, bob):
            method, data = client.next_broadcast()
            say(f"   {client.name:<5} got  {method} {show(data)}")

    say("1. request: alice calls add(5) and waits for the answer")
    value = a.request("add", 5, timeout=WAIT)
    say(f"   answer: {show(value)}")
    say("2. broadcast: the server told every connected client about the change")
    broadcast_received()

    say("3. notification: bob sends say(...) and expects no answer; the server broadcasts it")
    b.notify("say", {"name": bob.name, "text": "hello from bob"})
    broadcast_received()

    say("4. server-to-client request: alice calls greet(); to answer, the server calls alice's whoami()")
    greeting = a.request("greet", timeout=WAIT)
    say(f"   the server asked alice: {', '.join(alice.asked)}() -> {show(alice.name)}")
    say(f"   answer: {show(greeting)}")

    say('5. remote error: alice calls add("five"); the server answers with an Error')
    try:
        a.request("add", "five", timeout=WAIT)
    except RequestException as exc:
        say(f"   RequestException: {show(exc.data)}")
    else:
        raise RuntimeError("add('five') did not fail")

    say("6. timeout: bob calls sleep(0.5) but waits only 0.1 s")
    try:
        b.request("sleep", 0.5, timeout=0.1)
    except RequestTimeout as exc:
        say(f"   RequestTimeout: {exc}")
    else:
        raise RuntimeError("sleep(0.5) did not time out")

    say("7. introspection: bob asks rpcengine.describe what the server offers")
    for method in b.request("rpcengine.describe", timeout=WAIT):
        say(f"   {method['name']:<6} {method['doc']}")


def _outcome(func: Callable[..., object], *args: Any) -> Exception | None:
    """Run ``func(*args)`` and return the exception it raised, or None (for a greenlet that must not die)."""
    try:
        func(*args)
    except Exception as exc:
        return exc
    return None


def play(demo: Any, script: Callable[[DemoClient, DemoClient], object], keep_running: float, stop: Any) -> None:
    """Start ``demo``, run ``script(alice, bob)`` until it ends or ``stop`` is set, then stop ``demo``.

    Blocks (yields). ``demo`` is the one-process demo or the cluster (both have
    ``start``, ``print_header``, ``connect_clients``, ``say``, ``keep_running``,
    ``stop`` and ``farewell``); ``stop`` is the Event a signal sets. With
    ``keep_running`` the servers stay up that many seconds after the script.
    Re-raises what the script raised.
    """
    try:
        demo.start()
        demo.print_header()
        alice, bob = demo.connect_clients()
        runner = gevent.spawn(_outcome, script, alice, bob)
        waitables: list[Any] = [runner, stop]
        gevent.wait(waitables, count=1)
        if not runner.ready():
            runner.kill()
            demo.say("interrupted")
        elif runner.value is not None:
            raise runner.value
        elif keep_running > 0:
            demo.keep_running(keep_running, stop, alice)
    finally:
        demo.stop()
    demo.farewell()
