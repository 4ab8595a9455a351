"""The wire protocol over TCP, byte for byte: a plain session, one JSON message list per line."""

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


server = TcpServer(("127.0.0.1", 0), MethodDispatcher(Math())).start()


def open_line_socket():
    """Connect a raw socket; return (send_line, read_line)."""
    sock = gevent.socket.create_connection(server.address, timeout=5)
    lines = sock.makefile("rb")

    def send_line(text):
        sock.sendall(text.encode() + b"\n")

    def read_line():
        return json.loads(lines.readline())

    return send_line, read_line


# A plain session: the first frame is a message list.
send, read = open_line_socket()
send('[2, 1, "add", [1, 2]]')  # Request: [2, message_id, method, data]
assert read() == [3, 1, 1, 3]  # Response: [3, message_id, request_message_id, data]
send('[2, 2, "sub", [1, 2]]')
assert read() == [4, 2, 2, {"error": "method_not_found", "message": "method not found: sub", "method": "sub"}]
send('[2, 3, "add"]')  # a Request with its data missing
error = read()
assert error[:3] == [4, 3, 3] and error[3]["error"] == "invalid_message"
send('[1, 4, "add", [1, 2]]')  # a Notification: no answer, ever
send("[-1]")  # Disconnect: I will send no new requests
server.stop()
