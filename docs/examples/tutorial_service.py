"""The tutorial's service: a calculator with a memory, shared by all its clients."""

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
