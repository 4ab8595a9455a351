"""How-to: call from asyncio: a HubThread runs the client, coroutines await submit_async()."""

import asyncio
import queue

import gevent

from dispatchers import MethodDispatcher
from rpcengine import HandlerInterrupted, HubThread, RequestException
from transports.tcp import TcpServer, connect


class Service:
    """The service the coroutines call (served from the same hub here, to keep the example whole)."""

    def __init__(self):
        self.interrupted = queue.Queue()  # thread-safe: the handlers put, the asyncio program gets

    def rpc_add(self, request):
        """Return a + b."""
        a, b = request.data
        return a + b

    def rpc_sleep(self, request):
        """Sleep data seconds; note it when the caller gives up first."""
        try:
            gevent.sleep(request.data)
        except HandlerInterrupted as exc:
            self.interrupted.put(exc.reason)
            raise
        return "slept"


async def main(client, service):
    """The asyncio program: await calls, run many at once, cancel some."""
    assert await client.submit_async("add", [1, 2], timeout=5) == 3

    # Many calls at once, from one event loop: they share the one connection.
    sums = await asyncio.gather(*(client.submit_async("add", [n, n], timeout=5) for n in range(100)))
    assert sums == [2 * n for n in range(100)]

    # Errors arrive as the same exceptions as in gevent code.
    try:
        await client.submit_async("no_such_method", timeout=5)
    except RequestException as exc:
        assert exc.data["error"] == "method_not_found"

    # Cancelling the task cancels the call: the server is sent a Cancel and stops the handler.
    task = asyncio.create_task(client.submit_async("sleep", 10))
    await asyncio.sleep(0.1)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    assert await asyncio.to_thread(service.interrupted.get, timeout=5) == "cancelled"

    # asyncio.wait_for cancels the task it gives up on, and with it the call.
    try:
        await asyncio.wait_for(client.submit_async("sleep", 10), timeout=0.1)
    except asyncio.TimeoutError:
        pass
    assert await asyncio.to_thread(service.interrupted.get, timeout=5) == "cancelled"


service = Service()
with HubThread() as hub:  # started here, stopped and joined at the end of the block
    server = hub.run(lambda: TcpServer(("127.0.0.1", 0), MethodDispatcher(service)).start())
    hub.on_stop(server.stop)
    client = hub.run(connect, *server.address)
    hub.on_stop(client.close)
    asyncio.run(main(client, service))  # the event loop runs in this thread; the hub in its own
