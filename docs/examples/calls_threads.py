"""How-to: share one client among OS threads: a HubThread runs it, the threads submit calls."""

import threading
from concurrent.futures import ThreadPoolExecutor

import gevent

from dispatchers import MethodDispatcher
from rpcengine import HubThread, WrongThread
from transports.tcp import TcpServer, connect


class Math:
    """The service the threads call (served from the same hub here, to keep the example whole)."""

    def rpc_add(self, request):
        """Return a + b."""
        a, b = request.data
        return a + b

    def rpc_slow_add(self, request):
        """Return a + b, after a long while."""
        gevent.sleep(10)
        return self.rpc_add(request)


def start_server():
    """Start the TCP server (run on the hub's thread)."""
    return TcpServer(("127.0.0.1", 0), MethodDispatcher(Math())).start()


hub = HubThread().start()  # a gevent hub in a background thread
server = hub.run(start_server)  # runs on the hub's thread; this thread waits for the result
hub.on_stop(server.stop)
client = hub.run(connect, *server.address)  # the engine belongs to the hub's thread
hub.on_stop(client.close)  # hub.stop() runs these on the hub's thread, newest first


def add(a, b):
    """Call add from any thread: submit() returns a concurrent.futures.Future."""
    return client.submit("add", [a, b], timeout=5).result(timeout=5)  # blocks this thread only


# A pool of worker threads shares the one client (and its one connection).
with ThreadPoolExecutor(max_workers=8) as pool:
    assert list(pool.map(add, range(100), range(100))) == [2 * n for n in range(100)]

# Plain threads work the same way.
sums = {}
threads = [threading.Thread(target=lambda n=n: sums.update({n: add(n, 1)})) for n in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(5)
assert sums == {0: 1, 1: 2, 2: 3, 3: 4}

# Cancelling the future cancels the call (a call already sent: the server is sent a Cancel).
future = client.submit("slow_add", [1, 2])
assert future.cancel() and future.cancelled()

# Notifications too; the future ends once the notification is handed to the transport.
client.notify_threadsafe("add", [1, 2]).result(timeout=5)

# The hub-only methods refuse another thread at once instead of corrupting the engine.
try:
    client.request("add", [1, 2])
except WrongThread:
    pass

# hub.spawn() runs any function on the hub's thread, where request() and call() are at home.
assert hub.spawn(client.request, "add", [20, 22], timeout=5).result(timeout=5) == 42

hub.stop()  # closes the client, stops the server, ends the thread
assert hub.join(10)
