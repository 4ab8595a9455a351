"""Counting greenlet switches and Python calls in one process, for the per-call cost columns.

A :class:`EventCounter` counts either every greenlet switch (through
``greenlet.settrace``: ``switch`` and ``throw`` events) or every Python
function call (through ``sys.setprofile``: ``call`` events, which include a
generator resuming; calls into C functions are not counted). The profile
function is per thread, and gevent's greenlets all run on the main thread,
so one call covers every greenlet.

Both hooks slow the process down, so they are only switched on for a
separate short counting pass, never during a timed repetition.
"""

from __future__ import annotations

import sys
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
