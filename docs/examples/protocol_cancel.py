"""The wire protocol over TCP, byte for byte: the features, Cancel, and a Request's deadline."""

import json

import gevent
import gevent.socket

from dispatchers import MethodDispatcher
from transports.tcp import TcpServer


class Service:
    """A fast method and a slow one."""

    def rpc_add(self, request):
        """Return a + b."""
        a, b = request.data
        return a + b

    def rpc_sleep(self, request):
        """Sleep data seconds."""
        gevent.sleep(request.data)
        return "slept"


server = TcpServer(("127.0.0.1", 0), MethodDispatcher(Service())).start()


def open_line_socket():
    """Connect a raw socket; return (send_line, read_line)."""
    sock = gevent.socket.create_connection(server.address, timeout=5)
    lines = sock.makefile("rb")

    def send_line(text):
        sock.sendall(text.encode() + b"\n")

    def read_line():
        return json.loads(lines.readline())

    return send_line, read_line


# The client offers both features; the server answers with those it takes.
send, read = open_line_socket()
send('{"rpcengine": 1, "session": null, "ack": 0, "features": ["cancel", "deadline"]}')
hello = read()
assert hello["features"] == ["cancel", "deadline"]

# Cancel: [5, message_id, request_message_id]. The running handler is interrupted.
send('[2, 1, "sleep", 10]')
send("[5, 2, 1]")
assert read() == [4, 1, 1, {"error": "cancelled", "message": "the caller cancelled the request"}]

# A Request's fifth item: the caller waits this many milliseconds at most.
send('[2, 3, "add", [1, 2], 1000]')
assert read() == [3, 2, 3, 3]
send('[2, 4, "sleep", 10, 100]')  # runs over its 100 ms: interrupted
assert read() == [4, 3, 4, {"error": "deadline_exceeded", "message": "the caller's deadline passed"}]

# A Cancel for a request already answered is ignored.
send("[5, 5, 3]")
send('[2, 6, "add", [2, 3]]')
assert read() == [3, 4, 6, 5]

# A handshake without "features" gets none: a fifth item is invalid, and code 5 unknown.
send, read = open_line_socket()
send('{"rpcengine": 1, "session": null, "ack": 0}')
assert "features" not in read()
send('[2, 1, "add", [1, 2], 1000]')
error = read()
assert error[:3] == [4, 1, 1] and error[3]["error"] == "invalid_message"
send("[5, 2, 1]")  # an unknown message code: the server disconnects
assert read() == [-1]
server.stop()
