"""The wire protocol over TCP, byte for byte: the handshake, heartbeats and resume."""

import json

import gevent.socket

from dispatchers import MethodDispatcher
from transports.tcp import TcpServer


class Math:
    """A one-method service."""

    def rpc_add(self, request):
        """Return a + b."""
        a, b = request.data
        return a + b


server = TcpServer(("127.0.0.1", 0), MethodDispatcher(Math()), heartbeat_interval=0.5).start()


def open_line_socket():
    """Connect a raw socket; return (send_line, read_line)."""
    sock = gevent.socket.create_connection(server.address, timeout=5)
    lines = sock.makefile("rb")

    def send_line(text):
        sock.sendall(text.encode() + b"\n")

    def read_line():
        return json.loads(lines.readline())

    return send_line, read_line


# The handshake: a JSON object first, each way.
send, read = open_line_socket()
send('{"rpcengine": 1, "session": null, "ack": 0}')  # the client's hello: a JSON object
hello = read()
assert hello["rpcengine"] == 1 and hello["resumed"] is False and hello["heartbeat"] == 0.5
assert {"rpcengine", "session", "resumed", "ack", "heartbeat", "timeout"} <= set(hello)
send('[2, 1, "add", [20, 22]]')
assert read() == [3, 1, 1, 42]

# Heartbeats and acknowledgements.
assert read() == [0, 1]  # Heartbeat: [0, last_message_id received] (here every 0.5 s)
send("[0, 1]")  # acknowledge the server's message 1: it may forget it

# Resume the session on a new connection.
send, read = open_line_socket()  # a new connection resuming that session
send(json.dumps({"rpcengine": 1, "session": hello["session"], "secret": hello["secret"], "ack": 1}))  # id and secret
resumed = read()
assert resumed["resumed"] is True and resumed["ack"] == 1  # the server had our message 1
server.stop()
