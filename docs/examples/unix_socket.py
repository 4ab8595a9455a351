"""How-to: serve on a Unix socket. Only this user may connect, and the server knows who did."""

import os
import stat
import tempfile

from dispatchers import MethodDispatcher
from rpcengine.errors import HandshakeError
from transports.unix import UnixServer, connect


class Greeter:
    """Greets the process that called, by its credentials."""

    def rpc_whoami(self, request):
        """Return the calling process's pid, uid and gid, as the kernel told the server."""
        peer = request.engine.transport.peer_address  # a PeerCredentials
        return {"pid": peer.pid, "uid": peer.uid, "gid": peer.gid}


def same_user(hello, peer):
    """Admit only processes of the user running the server."""
    return peer.uid == os.getuid()


path = os.path.join(tempfile.mkdtemp(), "greeter.sock")
with UnixServer(path, MethodDispatcher(Greeter()), authenticate=same_user) as server:
    print(oct(stat.S_IMODE(os.stat(path).st_mode)))  # 0o600: only the owner may connect

    client = connect(path)
    assert client.request("whoami", None, timeout=5) == {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid()}
    print("the server sees", client.request("whoami", None, timeout=5))
    print("the client sees", client.transport.link.peer_address)  # the server's credentials
    client.close()

    # A second server on a live server's socket is refused; the first goes on.
    try:
        UnixServer(path, MethodDispatcher(Greeter())).start()
    except OSError as exc:
        print("refused:", exc.strerror)

assert not os.path.exists(path)  # removed when the server stopped

# Linux abstract names have no file at all.
name = f"@greeter-{os.getpid()}"
with UnixServer(name, MethodDispatcher(Greeter())):
    client = connect(name)
    print("abstract:", client.request("whoami", None, timeout=5)["pid"] == os.getpid())
    client.close()

# A server whose authenticate hook says no refuses the handshake.
with UnixServer(path, MethodDispatcher(Greeter()), authenticate=lambda hello, peer: False):
    try:
        connect(path)
    except HandshakeError as exc:
        print("refused:", exc)
