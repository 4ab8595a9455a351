"""How-to: expose an object's rpc_ methods, and list them with rpcengine.describe."""

from dispatchers import MethodDispatcher, dummy_rpc_handler
from rpcengine import Engine, RequestException
from transports.memory import pair


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


# Serve an Inventory over the in-memory loopback, and call it.
client_side, server_side = pair()
Engine(server_side, MethodDispatcher(Inventory()))
client = Engine(client_side, dummy_rpc_handler)

assert client.request("put", ["apples", 3], timeout=5) == 1
assert client.request("count", "apples", timeout=5) == 3
try:
    client.request("clear", timeout=5)
except RequestException as exc:
    assert exc.data["error"] == "method_not_found"

# What the dispatcher exposes, as `rpcengine methods URL` prints it.
methods = client.request("rpcengine.describe", timeout=5)
assert [method["name"] for method in methods] == ["count", "put"]
assert methods[1]["doc"] == "Store a quantity: data is [name, quantity]."
client.close()
