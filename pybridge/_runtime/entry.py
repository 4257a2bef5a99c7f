"""A port handle's way into its connection: the one place where calls from other threads are
routed.

pybridge.Port calls a PortBackend; the runtime gives it an Entry. While only the loop thread
uses the port, an Entry's methods are the connection's own (nothing checked per call). While
async_ jobs or coroutines run for the port (share(True)), each comes through route(): from
the loop thread it runs as is, from another it runs on the loop thread (JobPool.call) and
the caller waits. Each Port method makes one backend call, so it is routed as a whole.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable, cast

from .._api.driver import PortBackend
from .jobs import JobPool

#: PortBackend's methods, in the order it lists them
METHODS = tuple(name for name, fn in vars(PortBackend).items()
                if callable(fn) and not name.startswith("_"))
#: plain reads of the port's state: never routed (they were not before either)
READS = frozenset(("driver", "timeout", "raw"))


class Entry:
    """The PortBackend a handle holds: the target's methods, straight or routed."""

    def __init__(self, target: PortBackend, jobs: JobPool) -> None:
        self._jobs = jobs
        self._direct = {name: getattr(target, name) for name in METHODS}
        self._routed: dict[str, Callable[..., Any]] | None = None
        vars(self).update(self._direct)

    def backend(self) -> PortBackend:
        """This entry as what it stands for (its methods are set per instance)."""
        return cast(PortBackend, self)

    def share(self, on: bool) -> None:
        """Route calls from other threads (on) or not (off)."""
        if not on:
            vars(self).update(self._direct)
            return
        if self._routed is None:
            self._routed = {name: self.route(fn) for name, fn in self._direct.items()
                            if name not in READS}
        vars(self).update(self._routed)

    def route(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        jobs = self._jobs

        @functools.wraps(fn)
        def routed(*args: Any, **kw: Any) -> Any:
            if threading.get_ident() == jobs.loop_thread:
                return fn(*args, **kw)
            return jobs.call(fn, *args, **kw)
        return routed
