"""How-to: reconnect and resume. A request survives its connection being cut."""

import gevent

from dispatchers import MethodDispatcher
from transports.session.client import ReconnectPolicy
from transports.tcp import TcpServer, connect


class Slow:
    """A service slow enough to be cut off in the middle of a call."""

    def rpc_slow_double(self, request):
        """Wait a moment, then return data * 2."""
        gevent.sleep(0.3)
        return request.data * 2


server = TcpServer(("127.0.0.1", 0), MethodDispatcher(Slow()), resume_grace=10).start()
host, port = server.address

client = connect(
    host,
    port,
    reconnect=ReconnectPolicy(initial_delay=0.05, max_delay=1.0),  # or reconnect=True
    heartbeat_interval=1.0,
    heartbeat_timeout=3.0,  # a silent peer is declared dead after 3 s
)


def cut_every_connection():
    """Simulate a network failure: drop the sockets, keep the sessions."""
    for session in server.sessions:
        if session.link is not None:
            session.link.close("simulated network failure")


gevent.spawn_later(0.1, cut_every_connection)
assert client.request("slow_double", 21, timeout=10) == 42  # answered after the resume
assert len(server.sessions) == 1  # the same session, resumed
client.close()
server.stop()
