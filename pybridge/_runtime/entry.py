"""A port handle's way into its connection: the one place where calls from other threads are
routed.

pybridge.Port calls a PortBackend; the runtime gives it an Entry. The thread that runs the
port's callbacks (the loop thread, or the port's own under port-level locking: Conn.owns)
calls the connection's methods directly. From any other thread (an async_ job, a
coroutine's executor, a thread the driver started): sends go straight to the channel's
writer too, whose lock keeps frames whole (the loop thread is woken to flush them:
PortThreads.queued); every other call runs on the owning thread between callbacks
(PortThreads.on_owner) while the caller waits. Each Port method makes one backend call, so
it is routed as a whole.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, cast

from .._api.driver import PortBackend

#: PortBackend's methods, in the order it lists them
METHODS = tuple(name for name, fn in vars(PortBackend).items()
                if callable(fn) and not name.startswith("_"))
_METHODS = frozenset(METHODS)
#: plain reads of the port's state: never routed
READS = frozenset(("driver", "timeout", "raw"))
#: the writer's: thread-safe, never routed
SENDS = frozenset(("send", "send_parts"))
#: calls to Erlang wait on their own (_runtime.erlcalls): never routed, so that a thread's
#: call does not hold the owning thread while Erlang runs
CALLS = frozenset(("call_erlang", "call_erlang_async"))
UNROUTED = READS | SENDS | CALLS


class Owned(Protocol):
    """The connection as an Entry sees it (_runtime.threads.PortThreads)."""

    def owns(self) -> bool: ...

    def on_owner(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any: ...


class Entry:
    """The PortBackend a handle holds: the connection's methods, straight or routed, each
    made on its first use (an open makes an Entry, and most drivers use a few methods: S7)."""

    def __init__(self, conn: Owned) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        if name not in _METHODS:
            raise AttributeError(name)
        fn = getattr(self._conn, name)
        method = fn if name in UNROUTED else _routed(self._conn, fn)
        setattr(self, name, method)
        return method

    def backend(self) -> PortBackend:
        """This entry as what it stands for (its methods are set per instance)."""
        return cast(PortBackend, self)


def _routed(conn: Owned, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def routed(*args: Any, **kw: Any) -> Any:
        if conn.owns():
            return fn(*args, **kw)
        return conn.on_owner(fn, *args, **kw)
    return routed
