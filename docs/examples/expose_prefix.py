"""How-to: expose the methods of an object that have another prefix."""

from dispatchers import MethodDispatcher, dummy_rpc_handler
from rpcengine import Engine
from transports.memory import pair


class Admin:
    """Methods with another prefix."""

    def api_reset(self, request):
        """Exposed as "reset" with prefix="api_"."""
        return "reset"


client_side, server_side = pair()
Engine(server_side, MethodDispatcher(Admin(), prefix="api_"))
client = Engine(client_side, dummy_rpc_handler)
assert client.request("reset", timeout=5) == "reset"
client.close()
