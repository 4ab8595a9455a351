"""How-to: call with timeouts and handle every error a call can end with."""

import gevent

from dispatchers import MethodDispatcher
from rpcengine import (
    ConnectionLost,
    EncodeError,
    RequestException,
    RequestTimeout,
    RpcError,
)
from transports.tcp import TcpServer, connect


class Service:
    """Methods that fail in every way a call can fail."""

    def rpc_divide(self, request):
        """Divide a by b; a zero b is refused with a RequestException the caller receives."""
        a, b = request.data
        if b == 0:
            raise RequestException({"error": "division_by_zero", "message": "b must not be 0"})
        return a / b

    def rpc_crash(self, request):
        """A bug: the caller gets internal_error, the server logs the traceback."""
        return 1 / 0

    def rpc_odd_result(self, request):
        """A result JSON cannot hold: the caller gets unencodable_result."""
        return {1, 2, 3}

    def rpc_sleep(self, request):
        """Take a while."""
        gevent.sleep(request.data)
        return "done"


server = TcpServer(("127.0.0.1", 0), MethodDispatcher(Service())).start()
host, port = server.address
client = connect(host, port, default_timeout=10)  # applies to requests that give no timeout

# Errors the server sends: the handler's own, and the engine's stable kinds.
try:
    client.request("divide", [1, 0], timeout=5)
except RequestException as exc:
    assert exc.data == {"error": "division_by_zero", "message": "b must not be 0"}

engine_errors = {"no_such_method": "method_not_found", "crash": "internal_error", "odd_result": "unencodable_result"}
for method, kind in engine_errors.items():
    try:
        client.request(method, timeout=5)
    except RequestException as exc:
        assert exc.data["error"] == kind, exc.data

# A timeout stops the wait, and the server is sent a Cancel that stops the work (see the calls how-to).
try:
    client.request("sleep", 2, timeout=0.1)
except RequestTimeout:  # also a builtin TimeoutError
    pass
assert client.pending_count == 0  # a timed-out request leaves nothing behind

# Local errors: nothing is sent.
try:
    client.request("divide", {1, 2}, timeout=5)  # a set is not JSON
except EncodeError:  # also a ValueError; nothing was sent
    pass

# The connection ends while a request waits.
other = connect(host, port)
gevent.spawn_later(0.1, other.close)  # the connection ends while the request waits
try:
    other.request("sleep", 5, timeout=10)
except ConnectionLost:  # also a builtin ConnectionError
    pass

# Everything at once.
try:
    client.request("divide", [1, 0], timeout=5)
except RpcError as exc:  # every rpcengine exception
    print(type(exc).__name__, exc)  # RequestException b must not be 0

client.close()
server.stop()
