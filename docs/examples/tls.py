"""How-to: TLS. Make a self-signed certificate, serve over TLS, connect trusting it."""

import pathlib
import ssl
import subprocess
import tempfile

from dispatchers import MethodDispatcher
from transports.tcp import TcpServer, connect


class Echo:
    """Echo over TLS."""

    def rpc_echo(self, request):
        """Return data unchanged."""
        return request.data


folder = pathlib.Path(tempfile.mkdtemp())
# A self-signed certificate, made by openssl.
cert, key = folder / "cert.pem", folder / "key.pem"
openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=localhost"]
names = ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
subprocess.run([*openssl, *names, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)

# The server.
server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
server_context.load_cert_chain(cert, key)
server = TcpServer(("127.0.0.1", 0), MethodDispatcher(Echo()), ssl_context=server_context).start()
host, port = server.address

# A client that trusts the certificate.
client_context = ssl.create_default_context(cafile=cert)  # trust this certificate
client = connect(host, port, ssl_context=client_context)
assert client.request("echo", "over TLS", timeout=5) == "over TLS"
client.close()

# A client that does not trust it refuses the server.
try:
    connect(host, port, ssl_context=ssl.create_default_context())  # system trust only
except ssl.SSLCertVerificationError as exc:
    print("refused:", exc.verify_message)  # refused: self-signed certificate

server.stop()
