"""Counting greenlet switches and Python calls in one process, for the per-call cost columns.

A :class:`EventCounter` counts either every greenlet switch (through
``greenlet.settrace``: ``switch`` and ``throw`` events) or every Python
function call (through ``sys.setprofile``: ``call`` events, which include a
generator resuming; calls into C functions are not counted). The profile
function is per thread, and gevent's greenlets all run on the main thread,
so one call covers every greenlet.

Both hooks slow the process down, so they are only switched on for a
separate short counting pass, never during a timed repetition.

Scenarios S and S8 call from plain OS threads into an engine on a
``HubThread``: :class:`ThreadedCounter` counts there, in the hub thread and
in every thread started while it counts.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import greenlet

#: What :meth:`EventCounter.start` can count.
KINDS = ("switches", "calls")


class EventCounter:
    """Counts one kind of event (see :data:`KINDS`) between :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self.count = 0
        self.kind: str | None = None
        self._previous_trace: Any = None

    def _on_switch(self, event: str, _args: Any) -> None:
        if event in ("switch", "throw"):
            self.count += 1

    def _on_profile(self, _frame: Any, event: str, _arg: Any) -> None:
        if event == "call":
            self.count += 1

    def start(self, kind: str) -> None:
        """Start counting ``kind`` from zero (stopping any count in progress)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        self.stop()
        self.count = 0
        self.kind = kind
        if kind == "switches":
            self._previous_trace = greenlet.settrace(self._on_switch)
        else:
            sys.setprofile(self._on_profile)

    def stop(self) -> int:
        """Stop counting; return the number of events counted since :meth:`start` (0 if none ran)."""
        if self.kind == "switches":
            greenlet.settrace(self._previous_trace)
            self._previous_trace = None
        elif self.kind == "calls":
            sys.setprofile(None)
        self.kind = None
        return self.count


#: The process's one counter (the control channel's and the client worker's).
COUNTER = EventCounter()


class ThreadedCounter:
    """Counts one kind of event (see :data:`KINDS`) in a hub thread, this thread and the threads started meanwhile.

    ``in_hub(func, *args)`` runs ``func`` in the hub thread and returns its
    result (``HubThreadConn.in_hub``). Switches: ``greenlet.settrace`` holds
    for one thread, so it is set in the hub thread, the only one that
    switches greenlets here (plain threads wait on their futures with
    thread locks). Calls: ``sys.setprofile`` in this thread and in the hub
    thread, and ``threading.setprofile`` for the threads started while
    counting; each thread counts into its own entry, so no count is lost
    between threads. Starting and stopping cost a few events of their own
    (the hand-over to the hub thread): count them once with nothing between
    and subtract.
    """

    def __init__(self, in_hub: Callable[..., Any]) -> None:
        self.in_hub = in_hub
        self.kind: str | None = None
        self.switches = 0
        self.calls: dict[int, int] = {}
        self._previous_trace: Any = None

    def _on_switch(self, event: str, _args: Any) -> None:
        if event in ("switch", "throw"):
            self.switches += 1

    def _on_profile(self, _frame: Any, event: str, _arg: Any) -> None:
        if event == "call":
            calls = self.calls
            ident = threading.get_ident()
            calls[ident] = calls.get(ident, 0) + 1

    def _set_switch_trace(self) -> None:
        """In the hub thread: start counting its greenlet switches."""
        self._previous_trace = greenlet.settrace(self._on_switch)

    def _unset_switch_trace(self) -> None:
        """In the hub thread: put its previous greenlet trace function back."""
        greenlet.settrace(self._previous_trace)
        self._previous_trace = None

    def start(self, kind: str) -> None:
        """Start counting ``kind`` from zero (stopping any count in progress)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        self.stop()
        self.switches = 0
        self.calls = {}
        self.kind = kind
        if kind == "switches":
            self.in_hub(self._set_switch_trace)
        else:
            threading.setprofile(self._on_profile)
            self.in_hub(sys.setprofile, self._on_profile)
            sys.setprofile(self._on_profile)

    def stop(self) -> int:
        """Stop counting; return the events counted since :meth:`start`, over all the threads (0 if none ran)."""
        if self.kind == "switches":
            self.in_hub(self._unset_switch_trace)
        elif self.kind == "calls":
            sys.setprofile(None)
            self.in_hub(sys.setprofile, None)
            threading.setprofile(None)
        self.kind = None
        return self.switches + sum(self.calls.values())
