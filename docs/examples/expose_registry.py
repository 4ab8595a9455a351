"""How-to: expose functions registered in a Registry, under names that may hold dots."""

from dispatchers import Registry, dummy_rpc_handler
from rpcengine import Engine
from transports.memory import pair

registry = Registry()


@registry.register
def ping(request):
    """Answer pong."""
    return "pong"


@registry.register("math.mul")
def multiply(request):
    """Multiply two numbers."""
    a, b = request.data
    return a * b


client_side, server_side = pair()
Engine(server_side, registry)
client = Engine(client_side, dummy_rpc_handler)
assert client.request("ping", timeout=5) == "pong"
assert client.request("math.mul", [6, 7], timeout=5) == 42
client.close()
