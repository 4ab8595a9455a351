"""How-to: serve a handler that blocks its thread (a blocking driver, time.sleep, long CPU work) off the hub."""

import hashlib
import time

from dispatchers import MethodDispatcher, Registry, blocking, blocking_pool
from transports.tcp import TcpServer, connect


class Service:
    """Two handlers that would stall every connection if they ran on the hub."""

    @blocking
    def rpc_lookup(self, request):
        """Ask a blocking library (time.sleep stands in for one); return data in capitals."""
        time.sleep(0.5)  # blocks its own thread, not the hub
        return request.data.upper()

    @blocking
    def rpc_report(self, request):
        """Tell the caller how far the work is: from this thread with submit(), not request()."""
        future = request.engine.submit("progress", 50, timeout=5)
        return future.result(timeout=5)

    def rpc_digest(self, request):
        """Return the SHA-256 of data (fast: it runs on the hub as usual)."""
        return hashlib.sha256(request.data.encode()).hexdigest()


blocking_pool(4)  # at most 4 @blocking handlers of this hub run at once (8 by default); more wait
server = TcpServer(("127.0.0.1", 0), MethodDispatcher(Service())).start()

client_handler = Registry()
client_handler.add("progress", lambda request: f"{request.data}% noted")
client = connect(*server.address, client_handler)

start = time.monotonic()
lookups = [client.call("lookup", name, timeout=5) for name in ("ada", "bob", "cy", "dee")]
assert len(client.request("digest", "abc", timeout=5)) == 64  # answered while the lookups block
assert not any(lookup.ready() for lookup in lookups)
assert [lookup.get() for lookup in lookups] == ["ADA", "BOB", "CY", "DEE"]
assert time.monotonic() - start < 1.5  # in four threads at once: one after another would take 2 s

assert client.request("report", timeout=5) == "50% noted"

client.close()
server.stop()
