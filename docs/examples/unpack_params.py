"""How-to: handlers that take parameters, checked against their signature and annotations."""

from dataclasses import dataclass

from dispatchers import MethodDispatcher, Registry, takes_params
from rpcengine import Engine, Request, RequestException
from transports.memory import pair


def loopback_client(handler):
    """Serve ``handler`` over the in-memory loopback; return the client's engine."""
    client_side, server_side = pair()
    Engine(server_side, handler)
    return Engine(client_side, lambda request: None)


@dataclass
class Item:
    """One line of an order."""

    name: str
    quantity: int = 1


class Shop:
    """Handlers written as plain methods: the data of a call becomes their arguments."""

    def rpc_add(self, a: int, b: int = 1) -> int:
        """Return a + b."""
        return a + b

    def rpc_order(self, customer: str, items: list[Item]) -> int:
        """Take an order; return the number of pieces."""
        return sum(item.quantity for item in items)

    def rpc_whoami(self, request: Request) -> str:
        """A parameter annotated Request receives the request itself."""
        return f"you called {request.method!r}"


client = loopback_client(MethodDispatcher(Shop(), unpack_params=True))
assert client.request("add", [2, 3], timeout=5) == 5  # a list: positional arguments
assert client.request("add", {"a": 2}, timeout=5) == 3  # an object: keyword arguments
assert client.request("add", 41, timeout=5) == 42  # any other value: one argument
order = {"customer": "ann", "items": [{"name": "pear", "quantity": 2}, {"name": "fig"}]}
assert client.request("order", order, timeout=5) == 3  # each item built as an Item
assert client.request("whoami", timeout=5) == "you called 'whoami'"  # null: no arguments
try:
    client.request("add", [1, 2, 3], timeout=5)
except RequestException as exc:
    assert exc.data == {
        "error": "invalid_params",
        "message": "add(a, b=1) takes 1 to 2 arguments, got 3",
        "method": "add",
        "expected": "add(a, b=1)",
        "got": "3 arguments",
    }
else:
    raise AssertionError("add accepted three arguments")

bad_order = {"customer": "ann", "items": [{"name": "pear"}, {"name": "fig", "quantity": "two"}]}
try:
    client.request("order", bad_order, timeout=5)
except RequestException as exc:
    assert exc.data["error"] == "invalid_params"
    assert exc.data["path"] == "items[1].quantity"
    assert (exc.data["expected"], exc.data["got"]) == ("int", "str")
    assert exc.data["message"] == "order(customer, items): items[1].quantity must be int, got str"
else:
    raise AssertionError("a quantity of 'two' was accepted")
add = client.request("rpcengine.describe", timeout=5)[0]
assert add["signature"] == "(a: int, b: int = 1) -> int"
assert add["takes"] == "params"
assert add["params"][1] == {
    "name": "b",
    "kind": "positional_or_keyword",
    "annotation": "int",
    "required": False,
    "default": 1,
}
registry = Registry(unpack_params=True)


@registry.register
def mul(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


assert mul(6, 7) == 42, "register returns the function unchanged"
assert loopback_client(registry).request("mul", [6, 7], timeout=5) == 42


class Mixed:
    """The request style stays the default; one method opts in."""

    def rpc_echo(self, request):
        """Return the data unchanged."""
        return request.data

    @takes_params
    def rpc_greet(self, name: str) -> str:
        """Greet someone by name."""
        return f"hello, {name}"


client = loopback_client(MethodDispatcher(Mixed()))
assert client.request("echo", [1, 2], timeout=5) == [1, 2]
assert client.request("greet", ["ann"], timeout=5) == "hello, ann"
print("ok")
