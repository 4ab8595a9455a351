"""How-to: two server nodes through one Redis: a broadcast, a call across nodes, a work queue."""

import subprocess
import tempfile
import time
from pathlib import Path

from gevent.queue import Queue

from dispatchers import Registry
from rpcengine import ConnectionLost
from transports.redis import QueueWorker, RedisBroker, connect_queue, redis_client
from transports.tcp import TcpServer, connect

# A private redis-server on a Unix socket (no TCP port, no persistence).
# In production, every node points at the same Redis instead.
folder = Path(tempfile.mkdtemp())
socket_path = folder / "redis.sock"
options = f"--port 0 --unixsocket {socket_path} --unixsocketperm 700 --appendonly no --dir {folder}"
redis_server = subprocess.Popen(["redis-server", *options.split(), "--save", ""], stdout=subprocess.DEVNULL)
url = f"unix://{socket_path}"
while not socket_path.exists():  # redis-server makes its socket when it is ready
    time.sleep(0.05)
redis_client(url).ping()


def handler():
    """The service every node serves (and every queue worker runs)."""
    registry = Registry()
    registry.add("add", lambda request: sum(request.data))
    return registry


# Two nodes. Each would normally be its own process, on its own machine.
node_a = RedisBroker(url).start()
node_b = RedisBroker(url).start()
assert node_a.wait_subscribed(5) and node_b.wait_subscribed(5)
server_a = TcpServer(("127.0.0.1", 0), handler(), broker=node_a).start()
server_b = TcpServer(("127.0.0.1", 0), handler(), broker=node_b).start()


# One client on each node: it queues what it is told and answers whoami.
def client(server, name):
    """Connect a client to ``server``; return it and the queue of the news it is sent."""
    inbox = Queue()
    registry = Registry()
    registry.add("news", lambda notification: inbox.put(notification.data))
    registry.add("whoami", lambda request: name)
    return connect(*server.address, registry), inbox


alice, alice_news = client(server_a, "alice")
bob, bob_news = client(server_b, "bob")

# A broadcast from node A reaches the sessions of every node, once each.
result = server_a.sessions.notify("news", "hello, everyone")
assert result == 1  # the int: sessions reached on this node
assert result.nodes == 1 and not result.dropped  # node B got the publication
assert alice_news.get(timeout=5) == bob_news.get(timeout=5) == "hello, everyone"

# A call from node A to Bob, whose session node B holds: session ids name their node.
(bob_session,) = list(server_b.sessions)
assert bob_session.session_id.startswith(node_b.node_id + ".")
assert server_a.sessions.request(bob_session.session_id, "whoami", timeout=5) == "bob"

# The work queue: each request goes to one worker (at least once).
worker = QueueWorker(node_b, "work", handler()).start()
queue = connect_queue(node_a, "work")
assert queue.request("add", [2, 3], timeout=5) == 5
queue.close()
worker.stop()

# A session on a node that is gone fails at once, not at the timeout.
server_b.stop()
node_b.stop()
started = time.monotonic()
try:
    server_a.sessions.request(bob_session.session_id, "whoami", timeout=30)
    raise AssertionError("node B answered after it stopped")
except ConnectionLost as exc:
    print("ConnectionLost:", exc)
assert time.monotonic() - started < 5

alice.close()
bob.close()
server_a.stop()
node_a.stop()
redis_server.terminate()
redis_server.wait()
