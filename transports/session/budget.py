"""MemoryBudget: one bound on the bytes every session of a server holds queued, outboxes and write buffers together.

Each outbox and each link's write queue adds what it queues and releases what
it drops (:meth:`MemoryBudget.add`, :meth:`MemoryBudget.release`); a payload
that sits in both (a message kept for resend and not yet written) counts
twice, so the figure errs on the safe side. Once the total passes the limit,
``on_exceeded`` is called (once, until the total is back under it): the server
then closes the largest holders first. Nothing here does I/O or yields.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["DEFAULT_MAX_MEMORY", "MemoryBudget"]

#: Default bound on the bytes a server's sessions hold queued together.
DEFAULT_MAX_MEMORY = 256 << 20


class MemoryBudget:
    """Bytes queued by many sessions, against one ``limit`` (``None``: count, never act)."""

    __slots__ = ("_alarmed", "limit", "on_exceeded", "used")

    def __init__(self, limit: int | None = DEFAULT_MAX_MEMORY, on_exceeded: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self.on_exceeded = on_exceeded
        #: Bytes counted now.
        self.used = 0
        self._alarmed = False

    def add(self, size: int) -> None:
        """Count ``size`` more bytes; call ``on_exceeded`` if that passes the limit."""
        self.used += size
        limit = self.limit
        if limit is not None and self.used > limit and not self._alarmed and self.on_exceeded is not None:
            self._alarmed = True
            self.on_exceeded()

    def release(self, size: int) -> None:
        """Count ``size`` bytes fewer."""
        self.used -= size
        if self._alarmed and (self.limit is None or self.used <= self.limit):
            self._alarmed = False

    @property
    def exceeded(self) -> bool:
        """Whether more bytes are counted than the limit allows."""
        return self.limit is not None and self.used > self.limit
