"""The demo's service: a shared counter and a chat room that broadcast every change.

It is an ordinary object with ``rpc_`` methods, so it can also be served by
the command line::

    rpcengine serve rpcengine.cli.demo_service:DemoService tcp://127.0.0.1:7000

``serve`` calls :meth:`DemoService.on_serve` with its servers, and the
service broadcasts to every session of every server with
``server.sessions.notify(method, data)``.

Served by several processes with one broker (``serve ... --broker URL``,
as ``rpcengine demo --cluster`` does), the counter lives in Redis (the key
``{prefix}:demo:counter``), so every node adds to the same value; a
broadcast is made once per broker, and reaches the clients of every node;
and ``greet`` given a session id (a client's own ``engine.transport.session_id``)
asks that client, on whichever node holds it.
"""

from collections.abc import Iterable
from typing import Any

import gevent

from rpcengine.engine import error_data
from rpcengine.errors import RequestException

__all__ = ["MAX_SLEEP", "DemoService", "broker_of"]

#: Longest ``sleep`` the service accepts, in seconds.
MAX_SLEEP = 30.0


def broker_of(server: Any) -> Any:
    """Return the broker ``server`` was given (``broker=``; a WebSocket server's paths share it), or None."""
    broker = getattr(server, "broker", None)
    if broker is None:
        for endpoint in getattr(server, "endpoints", {}).values():
            broker = broker or getattr(endpoint, "broker", None)
    return broker


def _invalid(message: str, **extra: Any) -> RequestException:
    """Return the exception a handler raises for bad arguments (the caller gets its data)."""
    return RequestException(error_data("invalid_params", message, **extra))


class DemoService:
    """A counter and a chat room shared by every client; each change is broadcast to all.

    Broadcasts: ``counter.changed`` with ``{"value": ..., "by": ...}`` and
    ``chat.message`` with ``{"name": ..., "text": ...}``.
    """

    def __init__(self) -> None:
        self.value = 0
        self.servers: list[Any] = []
        #: The broker the servers share (``serve --broker``), or None: then the counter is this process's.
        self.broker: Any = None

    def on_serve(self, servers: Iterable[Any]) -> None:
        """Remember the servers to broadcast to, and their broker if any (called by ``rpcengine serve``, the demo)."""
        self.servers = list(servers)
        self.broker = next((b for b in map(broker_of, self.servers) if b is not None), None)

    def broadcast(self, method: str, data: Any) -> int:
        """Send a notification to every session of every server; return how many got it (on this node).

        Servers that share a broker are notified once: the broker delivers
        to all of them, and to every other node's.
        """
        reached = 0
        brokers: list[Any] = []
        for server in self.servers:
            broker = broker_of(server)
            if broker is not None:
                if any(broker is seen for seen in brokers):
                    continue
                brokers.append(broker)
            reached += server.sessions.notify(method, data)
        return reached

    @property
    def counter_key(self) -> str:
        """The Redis key of the shared counter (with a broker)."""
        return f"{self.broker.prefix}:demo:counter"

    def rpc_get(self, request: Any) -> int:
        """Return the counter's value."""
        if self.broker is not None:
            return int(self.broker.client.get(self.counter_key) or 0)
        return self.value

    def rpc_add(self, request: Any) -> int:
        """Add an integer (default 1) to the counter, broadcast counter.changed, return the new value."""
        amount = 1 if request.data is None else request.data
        if type(amount) is not int:
            raise _invalid("add takes an integer", got=amount)
        if self.broker is not None:
            self.value = int(self.broker.client.incrby(self.counter_key, amount))
        else:
            self.value += amount
        value = self.value
        self.broadcast("counter.changed", {"value": value, "by": amount})
        return value

    def rpc_say(self, request: Any) -> None:
        """Broadcast chat.message to everyone; data is {"name": ..., "text": ...} (send it as a notification)."""
        data = request.data
        if not (isinstance(data, dict) and isinstance(data.get("name"), str) and isinstance(data.get("text"), str)):
            raise _invalid('say takes {"name": str, "text": str}', got=data)
        self.broadcast("chat.message", {"name": data["name"][:40], "text": data["text"][:500]})

    def rpc_echo(self, request: Any) -> Any:
        """Return the data as it arrived: shows how the command line reads its arguments."""
        return request.data

    def rpc_greet(self, request: Any) -> str:
        """Ask the caller its name with a request back over the same connection (whoami); greet it.

        Given a session id, ask that client instead, on whichever node holds it (with a broker).
        """
        target = request.data
        if target is None:
            name = request.engine.request("whoami", timeout=5)
        elif isinstance(target, str) and self.servers:
            name = self.servers[0].sessions.request(target, "whoami", None, 5)
        else:
            raise _invalid("greet takes nothing, or a session id (a string)", got=target)
        return f"Hello, {name}!"

    def rpc_sleep(self, request: Any) -> float:
        """Sleep for the given seconds (at most 30), then return them: a slow method to try timeouts."""
        seconds = request.data
        if type(seconds) not in (int, float) or not 0 <= seconds <= MAX_SLEEP:
            raise _invalid(f"sleep takes a number of seconds from 0 to {MAX_SLEEP:g}", got=seconds)
        gevent.sleep(seconds)
        return seconds
