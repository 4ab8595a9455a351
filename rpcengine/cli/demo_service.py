"""The demo's service: a shared counter and a chat room that broadcast every change.

It is an ordinary object with ``rpc_`` methods, so it can also be served by
the command line::

    rpcengine serve rpcengine.cli.demo_service:DemoService tcp://127.0.0.1:7000

``serve`` calls :meth:`DemoService.on_serve` with its servers, and the
service broadcasts to every session of every server with
``server.sessions.notify(method, data)``.
"""

from collections.abc import Iterable
from typing import Any

import gevent

from rpcengine.engine import error_data
from rpcengine.errors import RequestException

__all__ = ["MAX_SLEEP", "DemoService"]

#: Longest ``sleep`` the service accepts, in seconds.
MAX_SLEEP = 30.0


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

    def on_serve(self, servers: Iterable[Any]) -> None:
        """Remember the servers to broadcast to (called by ``rpcengine serve`` and the demo)."""
        self.servers = list(servers)

    def broadcast(self, method: str, data: Any) -> int:
        """Send a notification to every session of every server; return how many got it."""
        return sum(server.sessions.notify(method, data) for server in self.servers)

    def rpc_get(self, request: Any) -> int:
        """Return the counter's value."""
        return self.value

    def rpc_add(self, request: Any) -> int:
        """Add an integer (default 1) to the counter, broadcast counter.changed, return the new value."""
        amount = 1 if request.data is None else request.data
        if type(amount) is not int:
            raise _invalid("add takes an integer", got=amount)
        self.value += amount
        self.broadcast("counter.changed", {"value": self.value, "by": amount})
        return self.value

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
        """Ask the caller its name with a request back over the same connection (whoami); greet it."""
        name = request.engine.request("whoami", timeout=5)
        return f"Hello, {name}!"

    def rpc_sleep(self, request: Any) -> float:
        """Sleep for the given seconds (at most 30), then return them: a slow method to try timeouts."""
        seconds = request.data
        if type(seconds) not in (int, float) or not 0 <= seconds <= MAX_SLEEP:
            raise _invalid(f"sleep takes a number of seconds from 0 to {MAX_SLEEP:g}", got=seconds)
        gevent.sleep(seconds)
        return seconds
