"""A file object a port selects on (driver_select on the worker's own descriptors): when it
is ready, the port's ready_input / ready_output run as its locking says (on the loop thread,
on the port's own thread, or after the coroutine that holds the port).
"""
from __future__ import annotations

import selectors
from typing import Any, Protocol


class Owner(Protocol):
    """What a Watch needs of its port (_runtime.conn.Conn)."""

    hold: Any                   # the coroutine that holds the port, if any (_runtime.aio)
    runner: Any                 # port-level locking: the port's thread (_runtime.runner)
    host: Any                   # the worker: its Poller (sel) and post()
    closed: bool
    closing: bool
    watches: dict[Any, Any]

    def call_back(self, name: Any, *args: Any) -> None: ...

    def flush(self) -> None: ...


class Watch:
    """A file object a port selects on (driver_select on the worker's own descriptors)."""

    __slots__ = ("conn", "fileobj", "events", "parked")

    def __init__(self, conn: Owner, fileobj: Any) -> None:
        self.conn = conn
        self.fileobj = fileobj
        self.events = 0
        self.parked: int | None = None  # port-level: unwatched while its callbacks run

    def fire(self, ev: int) -> None:
        conn = self.conn
        if conn.hold is not None:
            conn.hold.park(self)
            return
        if conn.runner is not None:
            # its readiness would fire again at every turn until the port's thread has
            # served it: unwatched meanwhile, watched again after (rewatch)
            conn.host.sel.unregister(self.fileobj)
            self.parked, self.events = self.events, 0
            conn.runner.submit(self.ready, ev)
            return
        self.ready(ev)

    def ready(self, ev: int) -> None:
        conn = self.conn
        events = self.events if self.parked is None else self.parked
        if ev & selectors.EVENT_READ and events & selectors.EVENT_READ:
            conn.call_back("ready_input", self.fileobj)
        events = self.events if self.parked is None else self.parked
        if ev & selectors.EVENT_WRITE and events & selectors.EVENT_WRITE and not conn.closed:
            conn.call_back("ready_output", self.fileobj)
        if self.parked is None:
            conn.flush()
        else:
            conn.host.post(self.rewatch)

    def rewatch(self) -> None:
        """On the loop thread, after the port's thread served the readiness."""
        events, self.parked = self.parked, None
        conn = self.conn
        if events and not (conn.closed or conn.closing) and conn.watches.get(self.fileobj) is self:
            conn.host.sel.register(self.fileobj, events, self)
            self.events = events
