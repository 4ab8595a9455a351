"""How-to: expose an object, or registered functions, and wrap them in middleware."""

from dispatchers import CallStatistics, MethodDispatcher, Registry, SlowCallLogger, with_middleware
from rpcengine import Engine, RequestException
from transports.memory import pair


def loopback_client(handler):
    """Serve ``handler`` over the in-memory loopback; return the client's engine."""
    client_side, server_side = pair()
    Engine(server_side, handler)
    return Engine(client_side, lambda request: None)


# -- object
class Inventory:
    """Only rpc_ methods are callable; everything else stays private."""

    def __init__(self):
        self.items = {}

    def rpc_put(self, request):
        """Store a quantity: data is [name, quantity]."""
        name, quantity = request.data
        self.items[name] = quantity
        return len(self.items)

    def rpc_count(self, request):
        """Return the stored quantity of one item."""
        return self.items.get(request.data, 0)

    def clear(self):
        """Not exposed: no rpc_ prefix."""
        self.items.clear()


client = loopback_client(MethodDispatcher(Inventory()))
assert client.request("put", ["apples", 3], timeout=5) == 1
assert client.request("count", "apples", timeout=5) == 3
try:
    client.request("clear", timeout=5)
except RequestException as exc:
    assert exc.data["error"] == "method_not_found"
# -- describe
methods = client.request("rpcengine.describe", timeout=5)
assert [m["name"] for m in methods] == ["count", "put"]
assert methods[1]["doc"] == "Store a quantity: data is [name, quantity]."


# -- prefix
class Admin:
    """Methods with another prefix."""

    def api_reset(self, request):
        """Exposed as "reset" with prefix="api_"."""
        return "reset"


assert loopback_client(MethodDispatcher(Admin(), prefix="api_")).request("reset", timeout=5) == "reset"
# -- registry
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


client = loopback_client(registry)
assert client.request("ping", timeout=5) == "pong"
assert client.request("math.mul", [6, 7], timeout=5) == 42
# -- middleware
stats = CallStatistics()
handler = with_middleware(MethodDispatcher(Inventory()), SlowCallLogger(threshold=0.5), stats)
client = loopback_client(handler)
client.request("put", ["pears", 1], timeout=5)
client.request("count", "pears", timeout=5)
assert stats.snapshot()["put"]["calls"] == 1
# -- end
print("ok")
