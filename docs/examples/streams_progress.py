"""How-to: stream a handler's results, report progress, and stop a stream early."""

import gevent
from gevent.queue import Queue

from dispatchers import MethodDispatcher
from rpcengine import RequestException
from transports.tcp import TcpServer, connect


class Reports:
    """Handlers that return generators: each item reaches the caller as it is yielded."""

    def __init__(self):
        self.closed = Queue()  # one entry per generator that ended, however it ended

    def rpc_rows(self, request):
        """Yield data rows one by one, as from a query that is still running."""

        def rows():
            try:
                for number in range(request.data):
                    yield {"row": number}
            finally:
                self.closed.put("rows")  # runs when the caller leaves early too

        return rows()

    def rpc_build(self, request):
        """A long job that reports how far it is, then its result, as the last item."""
        for percent in (25, 50, 75, 100):
            gevent.sleep(0.01)  # a step of the work
            yield {"progress": percent}
        yield {"result": "build 42 ok"}

    def rpc_flaky(self, request):
        """Two items, then a failure: the caller gets the items, then the Error."""
        yield 1
        yield 2
        raise RequestException({"error": "disk_full", "message": "no space left on the device"})


reports = Reports()
server = TcpServer(("127.0.0.1", 0), MethodDispatcher(reports)).start()
client = connect(*server.address)  # the handshake takes the stream feature

# Items come as they are made; at most `window` of them are in flight, so a slow reader
# bounds the server's memory.
numbers = []
for row in client.stream("rows", 10_000, timeout=5, window=128):
    numbers.append(row["row"])  # each row as it comes
assert numbers == list(range(10_000))
assert reports.closed.get(timeout=5) == "rows"

# Progress: the items say how far the job is; the last one is the result.
seen = []
for item in client.stream("build", timeout=5):
    if "progress" in item:
        seen.append(item["progress"])  # a progress bar would move here
    else:
        result = item["result"]
assert seen == [25, 50, 75, 100] and result == "build 42 ok"

# Leaving the loop early cancels the stream: the generator's finally runs on the server.
for row in client.stream("rows", 10**9, timeout=5):
    if row["row"] == 9:
        break
assert reports.closed.get(timeout=5) == "rows"

# A failure midway: the items sent before it, then the Error, once.
received = []
try:
    for item in client.stream("flaky", timeout=5):
        received.append(item)
except RequestException as exc:
    assert exc.data["error"] == "disk_full"
assert received == [1, 2]

# A caller that does not stream (request(), a peer without the feature, a JSON-RPC client)
# gets the items collected into one list, up to 10,000 of them.
assert client.request("rows", 3, timeout=5) == [{"row": 0}, {"row": 1}, {"row": 2}]
reports.closed.get(timeout=5)
older = connect(*server.address, features=frozenset())
assert list(older.stream("rows", 2, timeout=5)) == [{"row": 0}, {"row": 1}]

older.close()
client.close()
server.stop()
