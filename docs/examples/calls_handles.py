"""How-to: call without blocking: Call handles, many calls in flight, done callbacks."""

import gevent
from gevent.queue import Queue

from dispatchers import MethodDispatcher
from rpcengine import RequestException, RequestTimeout
from transports.tcp import TcpServer, connect


class Service:
    """Methods that take a while, or fail."""

    def rpc_double(self, request):
        """Wait data[1] seconds, then return data[0] * 2."""
        value, delay = request.data
        gevent.sleep(delay)
        return value * 2

    def rpc_refuse(self, request):
        """Always answer with an Error."""
        raise RequestException({"error": "refused", "message": "not today"})


server = TcpServer(("127.0.0.1", 0), MethodDispatcher(Service())).start()
client = connect(*server.address)

# call() sends the request at once and returns its handle; this greenlet goes on.
call = client.call("double", [21, 0.1], timeout=5)
assert not call.ready() and call.outcome is None
print(call)  # <Call 'double' id=1 running>
assert call.get() == 42  # waits (yielding) for the end: request() is call().get()
assert call.ready() and call.result() == 42 and call.exception() is None
print(call.outcome)  # Response([3, 1, 1, 42]): the message the call ended with

# Many calls in flight from one greenlet: together they take as long as the slowest.
calls = [client.call("double", [n, 0.2], timeout=5) for n in range(10)]
assert [each.get() for each in calls] == [n * 2 for n in range(10)]

# An Error answer ends the call too: get() and result() raise it, exception() returns it.
refused = client.call("refuse", timeout=5)
try:
    refused.get()
except RequestException as exc:
    assert exc.data["error"] == "refused"
assert isinstance(refused.exception(), RequestException)

# A done callback runs once, in the hub, when the call ends: here in the order the calls end.
ended = Queue()
for value, delay in [(1, 0.3), (2, 0.1), (3, 0.2)]:
    client.call("double", [value, delay], timeout=5).add_done_callback(ended.put)
assert [ended.get(timeout=5).result() for _ in range(3)] == [4, 6, 2]

# A callback added after the end runs too (soon, and still exactly once).
refused.add_done_callback(ended.put)
assert ended.get(timeout=5) is refused

# get(timeout) bounds this wait only: the call goes on, with its own timeout.
slow = client.call("double", [7, 0.3], timeout=5)
try:
    slow.get(timeout=0.05)
except RequestTimeout:
    assert not slow.ready()
assert slow.get() == 14

client.close()
server.stop()
