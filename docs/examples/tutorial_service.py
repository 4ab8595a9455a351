"""The tutorial's service: a calculator with a memory, shared by all its clients.

Serve it with ``rpcengine serve tutorial_service:Calculator tcp://127.0.0.1:7000``
(from this folder); run this file to check it over the in-memory loopback.
"""

from rpcengine import RequestException


class Calculator:
    """Adds numbers and remembers the last result."""

    def __init__(self):
        self.memory = 0

    def rpc_add(self, request):
        """Return the sum of a list of numbers, and remember it."""
        numbers = request.data
        if not isinstance(numbers, list) or not all(isinstance(n, (int, float)) for n in numbers):
            raise RequestException({"error": "invalid_params", "message": "add takes a list of numbers"})
        self.memory = sum(numbers)
        return self.memory

    def rpc_recall(self, request):
        """Return the last result."""
        return self.memory


if __name__ == "__main__":
    from dispatchers import MethodDispatcher
    from rpcengine import Engine
    from transports.memory import pair

    client_side, server_side = pair()
    Engine(server_side, MethodDispatcher(Calculator()))
    client = Engine(client_side, lambda request: None)
    assert client.request("add", [2, 3], timeout=5) == 5
    assert client.request("recall", timeout=5) == 5
    client.close()
    print("ok")
