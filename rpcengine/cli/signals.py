"""Turn SIGINT and SIGTERM into an event that long-running commands wait on."""

from __future__ import annotations

import signal

import gevent
from gevent.event import Event

__all__ = ["stop_requested"]


def stop_requested() -> Event:
    """Return an event that is set when the process gets SIGINT (Ctrl-C) or SIGTERM.

    From then on these signals no longer raise KeyboardInterrupt or kill the
    process: the caller waits on the event and shuts down in order.
    """
    event = Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, event.set)
    return event
