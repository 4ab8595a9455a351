"""How-to: serve browsers. A WebSocket server with a browser origin allowlist, and its script."""

import gevent.socket

from dispatchers import MethodDispatcher
from rpcengine import HandshakeError
from transports.websocket import WebSocketServer, connect


class Board:
    """A message board that every browser sees."""

    def __init__(self):
        self.messages = []

    def rpc_post(self, request):
        """Keep a message and broadcast it to every browser."""
        self.messages.append(request.data)
        server.sessions.notify("posted", request.data)
        return len(self.messages)


server = WebSocketServer(
    ("127.0.0.1", 0),
    {"/board": MethodDispatcher(Board())},  # one handler per path
    origins=["https://board.example.com", None],  # browsers from this site; programs (no Origin)
    hosts=["board.example.com"],  # the name pages use for this server (as well as 127.0.0.1)
).start()
host, port = server.address
print(server.url("/board"))  # ws://127.0.0.1:PORT/board

# A Python client connects to the same URL.
posted = []
client = connect(f"ws://{host}:{port}/board", lambda message: posted.append(message.data))
assert client.request("post", "hello", timeout=5) == 1

# A page from another site is refused.
try:
    connect(f"ws://{host}:{port}/board", origin="https://evil.example.net")
except HandshakeError as exc:  # the upgrade is refused with HTTP 403
    print("refused:", exc)
else:
    raise AssertionError("a foreign origin was admitted")


# The browser client script, served by the same server.
def http_get(path):
    """GET ``path`` from the server with a cooperative socket; return the status line."""
    with gevent.socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return sock.makefile("rb").readline().decode().strip()


status = http_get("/rpcengine.js")  # the browser client, served by the same server
assert status.split()[1] in ("200", "404"), status  # 404 only while the script is not installed

with gevent.Timeout(5):
    while not posted:
        gevent.sleep(0.01)
assert posted == ["hello"]
client.close()
server.stop()
