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
#: plain reads of the port's state: never routed
READS = frozenset(("driver", "timeout", "raw"))
#: the writer's: thread-safe, never routed
SENDS = frozenset(("send", "send_parts"))
#: calls to Erlang wait on their own (_runtime.erlcalls): never routed, so that a thread's
#: call does not hold the owning thread while Erlang runs
CALLS = frozenset(("call_erlang", "call_erlang_async"))


class Owned(Protocol):
    """The connection as an Entry sees it (_runtime.threads.PortThreads)."""

    def owns(self) -> bool: ...

    def on_owner(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any: ...


class Entry:
    """The PortBackend a handle holds: the connection's methods, straight or routed."""

    def __init__(self, conn: Owned) -> None:
        for name in METHODS:
            fn = getattr(conn, name)
            setattr(self, name, fn if name in READS | SENDS | CALLS else _routed(conn, fn))

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
