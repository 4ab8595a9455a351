"""How-to: the errors of connecting: nobody listens, or the server refuses the client."""

import socket

from dispatchers import MethodDispatcher
from rpcengine import HandshakeError
from transports.tcp import TcpServer, connect


class Echo:
    """A service that refuses every client (see authenticate below)."""

    def rpc_echo(self, request):
        """Return data unchanged."""
        return request.data


with socket.socket() as probe:  # find a port where nobody listens
    probe.bind(("127.0.0.1", 0))
    free_port = probe.getsockname()[1]
try:
    connect("127.0.0.1", free_port, connect_timeout=2)
except ConnectionRefusedError:  # an OSError
    print("refused: nobody listens")

refusing = TcpServer(("127.0.0.1", 0), MethodDispatcher(Echo()), authenticate=lambda hello, peer: False).start()
try:
    connect(*refusing.address)
except HandshakeError as exc:  # the server refused this client
    assert "authentication failed" in str(exc)
    print("refused:", exc)
refusing.stop()
