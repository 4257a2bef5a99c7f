"""The Poller: selectors' register/modify/unregister over one epoll, without its per-event
SelectorKey work; the worker's loop sleeps in it for every port, file object and the ctl
socket at once.

CPoller's select() is one compiled call (pybridge._wire._accel.poll); POLLER is the one the
worker uses (PYBRIDGE_PURE=1: Poller)."""
from __future__ import annotations

import select
from typing import Any

from .._wire import _accel
from .._wire.accel import PURE

EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
EPOLL_OF = (0, EPOLLIN, EPOLLOUT, EPOLLIN | EPOLLOUT)     # by selectors' EVENT_* bits


class Poller:
    """One epoll; select() gives (data, events) with selectors' EVENT_* bits."""

    def __init__(self) -> None:
        self.ep = select.epoll()
        self.epfd = self.ep.fileno()
        self.data: dict[int, tuple[Any, int]] = {}

    @staticmethod
    def fd(fileobj: Any) -> int:
        return fileobj if isinstance(fileobj, int) else fileobj.fileno()

    def register(self, fileobj: Any, events: int, data: Any = None) -> None:
        fd = self.fd(fileobj)
        if fd in self.data:
            raise KeyError(f"{fileobj!r} is already registered")
        self.ep.register(fd, EPOLL_OF[events])
        self.data[fd] = (data, events)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> None:
        fd = self.fd(fileobj)
        if self.data[fd][1] != events:
            self.ep.modify(fd, EPOLL_OF[events])
        self.data[fd] = (data, events)

    def unregister(self, fileobj: Any) -> None:
        fd = self.fd(fileobj)
        del self.data[fd]
        self.ep.unregister(fd)

    def update(self, fileobj: Any, old: int, new: int, data: Any) -> None:
        """From waiting for events `old` to `new` (0: not registered)."""
        if new == old:
            return
        if not old:
            self.register(fileobj, new, data)
        elif not new:
            self.unregister(fileobj)
        else:
            self.modify(fileobj, new, data)

    def select(self, timeout: float | None) -> list[tuple[Any, int]]:
        """What is ready, waiting up to timeout seconds (None: until something is)."""
        return self.ready(self.ep.poll(-1 if timeout is None else timeout))

    def ready(self, events: list[tuple[int, int]]) -> list[tuple[Any, int]]:
        """epoll's (fd, events) as (data, EVENT_* bits)."""
        data = self.data
        out = []
        for fd, ev in events:
            d, want = data[fd]
            # hang-up and error wake both directions, as in selectors
            out.append((d, ((ev & ~EPOLLOUT and 1) | (ev & ~EPOLLIN and 2)) & want))
        return out


class CPoller(Poller):
    """Poller whose select() is epoll_wait and ready() in one compiled call."""

    def select(self, timeout: float | None) -> list[tuple[Any, int]]:
        return _accel.poll(self.epfd, self.data, timeout)


POLLER: type[Poller] = Poller if PURE else CPoller
