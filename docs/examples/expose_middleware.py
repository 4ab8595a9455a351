"""How-to: wrap a handler in middleware that logs slow calls and counts calls per method."""

import logging

from dispatchers import CallStatistics, MethodDispatcher, SlowCallLogger, dummy_rpc_handler, with_middleware
from rpcengine import Engine
from transports.memory import pair

logging.basicConfig(level=logging.INFO)  # SlowCallLogger logs calls slower than its threshold


class Greeter:
    """The service to wrap."""

    def rpc_greet(self, request):
        """Return a greeting."""
        return f"Hello, {request.data}!"


stats = CallStatistics()
handler = with_middleware(MethodDispatcher(Greeter()), SlowCallLogger(threshold=0.5), stats)

client_side, server_side = pair()
Engine(server_side, handler)
client = Engine(client_side, dummy_rpc_handler)
assert client.request("greet", "world", timeout=5) == "Hello, world!"
assert client.request("greet", "you", timeout=5) == "Hello, you!"
assert stats.snapshot()["greet"]["calls"] == 2
client.close()
