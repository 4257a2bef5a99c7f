"""The thread side of a port (a mixin of _runtime.conn.Conn): which thread may use it, the
way other threads' calls reach it, what port-level locking adds (the port's Runner, its
asks answered through the loop thread, its end when a callback hangs), and the sinks that
an ask's answer comes to.

The loop thread alone reads channels and changes the Poller; the port's thread (port-level
locking) runs its callbacks and writes; any thread may send (the writer's lock).
"""
from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from .._api.driver import ERL_DRV_FLAG_USE_PORT_LOCKING
from .._errors import WorkerError
from .._wire import protocol as P
from .._wire.reader import Body
from .._wire.writer import FrameWriter
from .jobs import JobPool
from .runner import Busy, Runner
from .views import kept

log = logging.getLogger("pybridge")

# frames about the transport itself: handled at once even while a coroutine or an ask holds
# the port (a body in the ring may follow its PY_SHM_ATTACH in the same read)
TRANSPORT_OPS = frozenset((P.PY_SHM_ATTACH, P.PY_SHM_RELEASE))


class Loop(Protocol):
    """What a port's threads need of the worker (_runtime.worker.Worker)."""

    jobs: JobPool
    dirty: set[Any]                 # ports whose output waits for the loop's flush
    busy: Busy                      # what the loop thread runs, for the watchdog
    loop_ident: int                 # the loop thread's
    limit: float                    # seconds: the callback_limit of classes without one

    def on_loop(self) -> bool: ...

    def post(self, fn: Callable[[], object]) -> None: ...

    def wake(self) -> None: ...


class Asker(Protocol):
    """The port an ask on the loop thread waits for (_runtime.conn.Conn)."""

    pending: deque[Callable[[], object]]

    def dispatch(self, op: int, fl: int, rid: int, body: bytes) -> None: ...

    def deliver(self, pieces: list[Body]) -> None: ...

    def on_output(self, body: Body) -> None: ...


class Answer:
    """The FrameSink of an ask on the loop thread: the answer it waits for, and every other
    frame set aside (in conn.pending, in order) for after the callback."""

    def __init__(self, conn: Asker, rid: int) -> None:
        self.conn, self.rid = conn, rid
        self.body: bytes | None = None
        self.closed = False

    def dispatch(self, op: int, fl: int, rid: int, body: bytes) -> None:
        if op == P.PY_ANSWER and rid == self.rid:
            self.body, self.closed = body, True
        elif op in TRANSPORT_OPS:
            self.conn.dispatch(op, fl, rid, body)
        else:
            self.conn.pending.append(functools.partial(self.conn.dispatch, op, fl, rid, body))

    def deliver(self, pieces: list[Body]) -> None:
        # a zero_copy port's views are lent for this turn only: kept, as they wait
        self.conn.pending.append(functools.partial(self.conn.deliver, kept(pieces)))

    def on_output(self, body: Body) -> None:
        self.conn.pending.append(functools.partial(self.conn.on_output, kept([body])[0]))

    def resume(self) -> None:
        """Never called: nothing runs while an ask waits."""


class Waiter:
    """An ask of a port's thread: the answer the loop thread hands over (None: none came)."""

    __slots__ = ("rid", "body", "done")

    def __init__(self, rid: int) -> None:
        self.rid = rid
        self.body: bytes | None = None
        self.done = threading.Event()


class PortThreads:
    host: Loop
    runner: Runner | None           # port-level locking: the port's thread
    busy: Busy                      # the watchdog's view of the thread that runs callbacks
    hold: object | None             # a coroutine holds the port (_runtime.aio)
    writer: FrameWriter
    waiting: Waiter | None
    limit: float
    spec: str
    port_raw: int
    timeout_ms: int
    ask_id: int
    close: Callable[[], None]

    def lock_mode(self, cls: type) -> None:
        """The class's locking and callback_limit (ms; None or inf: no limit)."""
        limit = getattr(cls, "callback_limit", 0)
        if limit is None or limit == math.inf:
            self.limit = math.inf
        elif isinstance(limit, (int, float)) and limit > 0:
            self.limit = limit / 1000
        if int(getattr(cls, "flags", 0)) & ERL_DRV_FLAG_USE_PORT_LOCKING and self.runner is None:
            self.runner = Runner(f"pybridge-port-{self.spec}", self.after_task)
            self.runner.busy.conn = self
            self.busy = self.runner.busy

    def owns(self) -> bool:
        """The calling thread runs this port's callbacks now: the port's thread (port-level
        locking), else the loop thread (also while a coroutine holds a port-level port)."""
        runner = self.runner
        if runner is not None and runner.on_thread():
            return True
        return (runner is None or self.hold is not None) and self.host.on_loop()

    def on_owner(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """fn on the thread that owns the port, between its callbacks; the caller waits."""
        if self.runner is not None and self.hold is None:
            return self.runner.call(fn, *args, **kw)
        return self.host.jobs.call(fn, *args, **kw)

    def queued(self) -> None:
        """The writer queued a frame: the loop thread flushes it; a thread that is neither
        the loop's nor the port's own (whose task's end pushes) wakes it for that."""
        host = self.host
        host.dirty.add(self)
        # the ident test inlined: this runs for every frame a callback sends
        if threading.get_ident() != host.loop_ident and \
                not (self.runner is not None and self.runner.on_thread()):
            host.wake()

    def push(self) -> None:
        """From a thread other than the loop's: write what the pipe takes now; the loop
        thread is woken for the rest (and for a port that went away)."""
        writer = self.writer
        if writer.out and not writer.closed:
            if not writer.write_out() or writer.out:
                self.host.dirty.add(self)
                self.host.wake()

    def after_task(self) -> None:
        """The end of a task on the port's thread."""
        if self.runner is not None and not self.runner.stopped:
            self.push()

    def hung(self, stack: str) -> None:
        """From the watchdog: a callback on this port's thread ran past callback_limit. The
        node exits the port {pybridge, hung} (DRV_HUNG); its thread is left to end."""
        runner = self.runner
        if runner is None or runner.stopped:
            return
        runner.stop()
        log.error("pybridge port %s: a callback ran past its callback_limit (%s ms); the "
                  "port exits {pybridge, hung}. Its thread was at:\n%s", self.spec,
                  round(self.limit * 1000), stack,
                  extra={"pybridge_port": self.port_raw, "driver": self.spec})
        self.writer.send(P.DRV_HUNG)
        self.push()
        self.host.post(self.close)

    def ask_from_thread(self, op: int, body: bytes, deadline: float) -> tuple[int, bytes]:
        """An ask on the port's thread: the loop thread reads the channel and hands the
        answer over (Conn.relay); frames that come meanwhile queue behind this callback."""
        waiter = self.waiting = Waiter(self.ask_id)
        try:
            self.writer.send(op, body, rid=self.ask_id)
            self.push()
            if not waiter.done.wait(max(0.0, deadline - time.monotonic())):
                raise WorkerError("the node did not answer a driver call in time")
        finally:
            self.waiting = None
        if waiter.body is None:
            raise WorkerError("the port is gone")
        return waiter.body[0], waiter.body[1:]
