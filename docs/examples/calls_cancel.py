"""How-to: cancel a call, and let the server stop work whose caller gave up or whose deadline passed."""

import time

import gevent
from gevent.queue import Queue

from dispatchers import MethodDispatcher
from rpcengine import HandlerInterrupted, RequestCancelled, RequestTimeout, current_deadline
from transports.tcp import TcpServer, connect


class Worker:
    """A long job that notices when its caller stops waiting."""

    def __init__(self):
        self.ended = Queue()  # how each job ended: "done", "cancelled" or "deadline_exceeded"

    def rpc_crunch(self, request):
        """Work for data seconds, in small steps; return "done"."""
        try:
            for _ in range(int(request.data * 100)):
                try:
                    gevent.sleep(0.01)  # one step of the work
                except Exception:  # does not catch HandlerInterrupted: it is a BaseException
                    pass
            self.ended.put("done")
            return "done"
        except HandlerInterrupted as exc:  # raised where the handler yields to the hub
            self.ended.put(exc.reason)  # "cancelled" or "deadline_exceeded"
            raise  # the caller gets one Error whatever the handler does now

    def rpc_time_left(self, request):
        """Return the seconds the caller still waits (None: it set no timeout)."""
        deadline = current_deadline()
        return None if deadline is None else deadline - time.monotonic()


worker = Worker()
server = TcpServer(("127.0.0.1", 0), MethodDispatcher(worker)).start()
host, port = server.address
client = connect(host, port)  # the handshake takes the cancel, deadline and stream features
assert client.transport.features == {"cancel", "deadline", "stream"}

# Cancel: the call ends at once, and the server is sent a Cancel that stops the handler.
call = client.call("crunch", 10)
gevent.sleep(0.1)  # the handler is running now
assert call.cancel()
try:
    call.get()
except RequestCancelled:
    pass
assert worker.ended.get(timeout=5) == "cancelled"
assert not call.cancel()  # a call ends once; cancelling it again changes nothing

# A timeout travels with the request: the handler is stopped when the caller gives up.
try:
    client.request("crunch", 10, timeout=0.2)
except RequestTimeout:
    pass
assert worker.ended.get(timeout=5) in {"cancelled", "deadline_exceeded"}  # whichever came first

# Inside a handler, current_deadline() tells how long the caller waits.
assert 1.0 < client.request("time_left", timeout=2) <= 2.0
assert client.request("time_left") is None

# Without the features (a plain session, or features=frozenset()), a cancel only stops this side's wait:
# the server is not told, finishes the work, and its late answer is dropped.
plain = connect(host, port, features=frozenset())
assert not plain.transport.features
call = plain.call("crunch", 0.2)
assert call.cancel()
assert worker.ended.get(timeout=5) == "done"  # nobody waits for this answer any more

plain.close()
client.close()
server.stop()
