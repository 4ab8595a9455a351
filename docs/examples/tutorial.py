"""The tutorial: serve the Calculator over TCP and call it, in one script."""

# -- serve
from tutorial_service import Calculator

from dispatchers import MethodDispatcher
from transports.tcp import TcpServer

server = TcpServer(("127.0.0.1", 0), MethodDispatcher(Calculator()))  # port 0: any free port
server.start()
host, port = server.address
print(f"serving on {host}:{port}")
# -- connect
from transports.tcp import connect  # noqa: E402

received = []


def on_message(message):
    """The client's own rpc handler: what the server sends to this client arrives here."""
    received.append((message.method, message.data))


client = connect(host, port, on_message)
print(client.request("add", [2, 3], timeout=5))  # 5
print(client.request("recall", timeout=5))  # 5
# -- errors
from rpcengine import RequestException  # noqa: E402

try:
    client.request("add", "two and three", timeout=5)
except RequestException as exc:
    print("refused:", exc.data["message"])  # refused: add takes a list of numbers
# -- broadcast
server.sessions.notify("news", "the calculator is open")  # to every connected client
# -- check
import gevent  # noqa: E402

with gevent.Timeout(5):
    while not received:
        gevent.sleep(0.01)
print(received)  # [('news', 'the calculator is open')]
assert received == [("news", "the calculator is open")]
# -- close
client.close()
server.stop()
# -- end
