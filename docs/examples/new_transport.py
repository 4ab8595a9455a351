"""How-to: write a new transport. Line-framed JSON over any gevent stream socket."""

import gevent
import gevent.socket

from dispatchers import MethodDispatcher
from rpcengine import Engine, ProtocolError, default_codec
from rpcengine.wire import bad_frame_reply, has_request_id, parse_frame
from transports.base import Transport
from transports.framing import LineDecoder, frame_line


class StreamTransport(Transport):
    """Carry one Engine over a connected gevent socket, one JSON message per line."""

    def __init__(self, sock):
        super().__init__()
        self.sock = sock
        self.codec = default_codec()
        self.reader = None

    def bind(self, engine):
        """Called once by Engine(...): start delivering inbound messages."""
        super().bind(engine)
        self.reader = gevent.spawn(self.read_loop)

    def send(self, message, **kwargs):
        """Encode and write one message; raise ConnectionLost once closed, EncodeError if unencodable."""
        self.check_open()
        data = frame_line(self.codec.encode(message.to_list()))  # encode first: nothing is sent on error
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.lost(exc)
            self.check_open()

    def close(self):
        """End the transport: the engine's pending requests fail with ConnectionLost."""
        if not self.closed:
            self.sock.close()
            self.lost("closed locally")

    def read_loop(self):
        """Read lines, parse each into a message, hand it to the engine; report the end once."""
        decoder = LineDecoder(self.codec.max_size)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                for line in decoder.feed(data):
                    try:
                        message = parse_frame(self.codec, line)
                    except ProtocolError as exc:
                        if not has_request_id(exc):
                            raise  # garbage without a request id ends the connection
                        self.send(bad_frame_reply(exc, self.engine.next_message_id()))
                        continue
                    self.deliver(message)  # may block (yield): backpressure on the peer
        except (OSError, ProtocolError) as exc:
            self.lost(exc)
        else:
            self.lost("the peer closed the connection")


# Use it like any other transport.
class Greeter:
    """The service carried by the new transport."""

    def rpc_greet(self, request):
        """Return a greeting."""
        return f"Hello, {request.data}!"


left, right = gevent.socket.socketpair()
server = Engine(StreamTransport(right), MethodDispatcher(Greeter()))
client = Engine(StreamTransport(left), lambda request: None)
assert client.request("greet", "world", timeout=5) == "Hello, world!"

# Bad input is answered, not ignored.
raw, served = gevent.socket.socketpair()  # a peer that writes bytes by hand
Engine(StreamTransport(served), MethodDispatcher(Greeter()))
raw.sendall(b'[2, 99, "greet"]\n')  # a Request with its data missing
reply = default_codec().decode(raw.makefile("rb").readline())
assert reply[0] == 4 and reply[2] == 99 and reply[3]["error"] == "invalid_message", reply
raw.close()

# Closing one end ends the other.
client.close()
gevent.sleep(0.05)
assert server.closed  # the peer saw the end too
