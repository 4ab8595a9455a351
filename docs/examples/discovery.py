"""How-to: discovery. A server answers probes beside its listener; a client finds it by name and workgroup."""

from dispatchers import MethodDispatcher
from transports.discovery import DiscoveryResponder, discover
from transports.tcp import TcpServer, connect


class Counter:
    """A counter to be found on the LAN."""

    def __init__(self):
        self.value = 0

    def rpc_add(self, request):
        """Add the data to the counter; return the new value."""
        self.value += request.data
        return self.value


# The server listens on every address; its responder answers with the address the probe reached.
server = TcpServer(("0.0.0.0", 0), MethodDispatcher(Counter())).start()
url = f"tcp://0.0.0.0:{server.address[1]}"
# port=0 and host="127.0.0.1" keep this example on this machine; a real responder keeps the defaults
# (every address, UDP port 7399).
responder = DiscoveryResponder("counter", [url], workgroup="lab", host="127.0.0.1", port=0).start()

# A real client broadcasts: discover(timeout=1.0, workgroup="lab"). Here the probe goes to 127.0.0.1.
found = discover(timeout=0.5, workgroup="lab", address="127.0.0.1", port=responder.address[1])
[counter] = [server for server in found if server.name == "counter"]
print(counter.name, counter.workgroup, counter.version, counter.urls)
assert counter.urls == (f"tcp://127.0.0.1:{server.address[1]}",)

# Another workgroup's probe is not answered.
assert discover(timeout=0.3, workgroup="office", address="127.0.0.1", port=responder.address[1]) == []

# Connect to what was found.
host, port = counter.urls[0].removeprefix("tcp://").rsplit(":", 1)
engine = connect(host, int(port))
assert engine.request("add", 5) == 5
engine.close()

responder.stop()
server.stop()
