"""The tutorial: serve the Calculator over TCP and call it, in one script."""

import gevent

from dispatchers import MethodDispatcher
from rpcengine import RequestException
from transports.tcp import TcpServer, connect

from tutorial_service import Calculator

# 1. Serve the calculator over TCP; port 0 picks any free port.
server = TcpServer(("127.0.0.1", 0), MethodDispatcher(Calculator()))
server.start()
host, port = server.address
print(f"serving on {host}:{port}")

# 2. Connect a client. Its own rpc handler receives what the server sends to it.
received = []


def on_message(message):
    """The client's rpc handler: the server's notifications to this client arrive here."""
    received.append((message.method, message.data))


client = connect(host, port, on_message)
print(client.request("add", [2, 3], timeout=5))  # 5
print(client.request("recall", timeout=5))  # 5

# 3. An Error answer raises RequestException, with the data the server sent.
try:
    client.request("add", "two and three", timeout=5)
except RequestException as exc:
    print("refused:", exc.data["message"])  # refused: add takes a list of numbers

# 4. A notification to every connected client; wait (at most 5 s) until it arrives.
server.sessions.notify("news", "the calculator is open")
with gevent.Timeout(5):
    while not received:
        gevent.sleep(0.01)
print(received)  # [('news', 'the calculator is open')]
assert received == [("news", "the calculator is open")]

# 5. Close the client and stop the server (gracefully: running calls finish first).
client.close()
server.stop()
