"""How-to: publish notifications to every session, and call one client back."""

from gevent.queue import Queue

from dispatchers import Registry, dummy_rpc_handler
from transports.tcp import TcpServer, connect

# The server: a pure publisher, with hooks that see sessions come and go.
connected = []
server = TcpServer(
    ("127.0.0.1", 0),
    dummy_rpc_handler,  # a pure publisher: clients cannot call anything
    on_connect=connected.append,  # called with each new Session
    on_disconnect=lambda session: print("gone:", session.session_id),
).start()
host, port = server.address


# Clients receive notifications in their own rpc handler.
def subscriber(name):
    """Connect a client that answers whoami and queues the prices it is sent."""
    inbox = Queue()
    handler = Registry()
    handler.add("price", lambda notification: inbox.put(notification.data))
    handler.add("whoami", lambda request: name)
    return connect(host, port, handler), inbox


alice, alice_prices = subscriber("alice")
bob, bob_prices = subscriber("bob")

# Publish to every session.
delivered = server.sessions.notify("price", {"symbol": "ACME", "value": 12.5})
assert delivered == 2  # encoded once, queued for each session without blocking
assert alice_prices.get(timeout=5) == bob_prices.get(timeout=5) == {"symbol": "ACME", "value": 12.5}

# Call one client: each session's engine is that client's connection.
names = sorted(session.engine.request("whoami", timeout=5) for session in server.sessions)
assert names == ["alice", "bob"]
assert len(connected) == 2

alice.close()
bob.close()
server.stop()
