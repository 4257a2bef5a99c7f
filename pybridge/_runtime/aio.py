"""Coroutine callbacks: any Driver callback may be ``async def``.

One asyncio event loop per worker, made with the first coroutine and run on the worker's
own thread: its epoll descriptor sits in the worker's selector, and its selector stops it
after each pass where it would otherwise sleep, so every ``Aio.run()`` is one pass and
Worker.run's select does the sleeping for both. Coroutines therefore use ``self.port`` as
synchronous callbacks do, and a worker whose drivers have none never imports asyncio.

A callback that returns a coroutine holds its port (``Conn.hold``): everything else for
that port (frames, ready_async, select events) waits, in order, until the coroutine has
ended and its answer (control, call, start, a strict-mode reply) is sent. Other ports are
served meanwhile. A port that closes while its coroutine is pending has it cancelled, and
``stop`` runs once the coroutine has unwound: stop stays the last callback.

Under port-level locking the coroutine still runs here, on the loop thread, and uses
``self.port`` from there (Conn.owns); what waited for it goes back to the port's thread, in
order (Hold.hand_over). A BaseException out of a coroutine (SystemExit, KeyboardInterrupt)
is its callback's, as in a synchronous one: asyncio would let it end the loop.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import selectors
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from .._errors import ProtocolError
from .._wire import protocol as P
from .._wire.reader import Body
from .conn import Conn
from .handlers import fail, open_failed
from .poller import Poller
from .watch import Watch

log = logging.getLogger("pybridge")

SHUTDOWN_GRACE = 2.0        # seconds coroutines get to unwind when the node goes away
PASSES = 8                  # most loop passes in one turn of the worker: ports wait meanwhile
HELD_HIGH = 8 << 20         # bytes from Erlang waiting for a coroutine that pause reading


class Hold:
    """A port's pending coroutine, and the callbacks that wait for it to end."""

    task: asyncio.Task[Any]

    def __init__(self, conn: Conn, what: str, answer: Callable[[Any], object] | None,
                 rid: int) -> None:
        self.conn = conn
        self.what = what
        self.answer = answer
        self.rid = rid
        self.held: deque[Callable[[], object]] = deque()
        self.held_bytes = 0
        self.parked: dict[Any, int] = {}    # select()ed file objects not watched meanwhile
        self.closing: bool | None = None    # close() came: its call_stop, for the end
        self.error: BaseException | None = None     # what asyncio must not see (Aio.held)

    def answer_or_fail(self) -> None:
        """The coroutine's result to whoever waits for it; its exception as the same
        callback's, had it been synchronous."""
        conn = self.conn
        try:
            if self.error is not None:
                raise self.error
            result = self.task.result()
            if self.answer is not None:
                self.answer(result)
        except BaseException as e:  # noqa: BLE001 - CancelledError and SystemExit too
            if self.what == "start":
                open_failed(conn, self.rid, e)
            elif self.rid:
                fail(conn, self.rid, e, self.what)
            else:
                conn.log_exception(e, self.what)

    @property
    def full(self) -> bool:
        """Enough input waits: the port's channel is not read until the coroutine ends, so
        the driver's queue fills and the port turns busy (as for a slow sync callback)."""
        return self.held_bytes > HELD_HIGH

    def frame(self, op: int, fl: int, rid: int, body: bytes) -> None:
        if op == P.PY_STOP:
            self.conn.close()
        else:
            self.held_bytes += len(body)
            self.later(self.conn.dispatch, op, fl, rid, body)

    def output(self, pieces: list[Body]) -> None:
        self.held_bytes += sum(map(len, pieces))
        self.later(self.conn.deliver, pieces)

    def later(self, fn: Callable[..., object], *args: Any) -> None:
        self.held.append(functools.partial(fn, *args))

    def hand_over(self) -> None:
        """Port-level, on the port's thread, ahead of its queued tasks (they came later than
        what waited here): the port is free again; what waited runs, in order."""
        self.conn.hold = None
        self.run_held()
        self.conn.host.post(self.watch_again)

    def run_held(self) -> bool:
        """What waited runs, in order, until one starts another coroutine (the rest waits
        for that one: False) or the port closes."""
        conn, held = self.conn, self.held
        while held and conn.hold is None and not conn.closed:
            held.popleft()()
        if conn.hold is not None:
            for fn in held:
                conn.hold.later(fn)
            return False
        return True

    def watch_again(self) -> None:
        """On the loop thread: the file objects parked meanwhile, and the port's channel if
        reading it had paused."""
        for fileobj in list(self.parked):
            self.unpark(fileobj)
        if not self.conn.closed:
            self.conn.flush()

    def park(self, w: Watch) -> None:
        """A select()ed file object is ready: unwatch it until the coroutine ends (its
        readiness would come back at every turn of the worker's loop)."""
        if w.events:
            self.conn.host.sel.unregister(w.fileobj)
            self.parked[w.fileobj] = w.events
            w.events = 0

    def unpark(self, fileobj: Any) -> None:
        """Watch it again: at the end, or before the coroutine changes it with select."""
        ev = self.parked.pop(fileobj, 0)
        w = self.conn.watches.get(fileobj)
        if ev and w is not None and not w.events:
            self.conn.host.sel.register(fileobj, ev, w)
            w.events = ev

    def close(self, call_stop: bool) -> None:
        """The port closes: cancel the coroutine; until it has unwound the port is quiet
        (closed for its methods, nothing read or watched); then finish() closes it."""
        if self.closing is not None:
            return
        self.closing = call_stop
        conn = self.conn
        if self.held:
            log.warning("pybridge port %s closed while %s was pending: %d callbacks that "
                        "waited for it dropped", conn.spec, self.what, len(self.held),
                        extra={"pybridge_port": conn.port_raw, "driver": conn.spec})
            self.held.clear()
        conn.quieten()
        self.task.cancel()

    def finish(self) -> None:
        """After the loop's pass in which the coroutine ended (or at shutdown)."""
        conn, task = self.conn, self.task
        if conn.runner is not None and self.closing is None:
            self.answer_or_fail()
            conn.runner.submit_first(self.hand_over)
            return
        conn.hold = None
        if self.closing is not None:
            exc = task.exception() if task.done() and not task.cancelled() else None
            if exc is not None:
                conn.log_exception(exc, self.what)
            conn.close(self.closing and self.what != "start",  # no stop without a start
                       quieted=True)
            return
        self.answer_or_fail()
        for fileobj in list(self.parked):
            self.unpark(fileobj)
        try:
            if self.run_held() and not conn.closed:
                if conn.has_input():
                    conn.on_readable()          # frames an ask() of the coroutine set aside
                conn.flush()                    # and read the channel again if it was full
        except ProtocolError as e:
            log.error("pybridge port %s: %s; closing it", conn.spec, e)
            conn.close()


class Aio:
    """The worker's asyncio loop, run a pass at a time between the worker's selects.

    Worker.run serves it as it serves a port: ``closed``, ``on_readable`` (its descriptor,
    the loop's epoll, is readable when the loop has I/O); and before each select it calls
    ``run()`` and sleeps at most ``timeout()``."""

    closed = False

    def __init__(self, sel: Poller, conns: set[Conn]) -> None:
        self.conns = conns                  # the worker's ports
        self.wake_at = 0.0                  # time.monotonic() of the next pass due
        self.passes_left = 0
        self.sel = _PassSelector(self)
        self.loop = _Loop(self, self.sel)
        self.finished: deque[Hold] = deque()
        self.after: dict[Conn, deque[tuple[Coroutine[Any, Any, Any], str]]] = {}
        self.cleanup: set[asyncio.Task[None]] = set()
        asyncio.set_event_loop(self.loop)   # asyncio.get_event_loop() in sync callbacks
        sel.register(self.sel.fileno(), selectors.EVENT_READ, self)

    def on_readable(self) -> None:
        self.wake_at = 0.0

    def run(self) -> None:
        if self.wake_at <= time.monotonic():
            self.passes_left = PASSES
            self.loop.run_forever()         # until it would sleep: _PassSelector stops it
        while self.finished:
            self.finished.popleft().finish()

    def timeout(self) -> float | None:
        return None if self.wake_at == math.inf else max(0.0, self.wake_at - time.monotonic())

    def start(self, conn: Conn, coro: Coroutine[Any, Any, Any], what: str,
              answer: Callable[[Any], object] | None, rid: int) -> None:
        if conn.instance is None:           # stop or stop_select, from close()
            self.detach(conn, coro, what)
            return
        hold = conn.hold = Hold(conn, what, answer, rid)
        hold.task = self.loop.create_task(self.held(hold, coro), name=f"{conn.spec}.{what}")

    async def held(self, hold: Hold, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await coro
        except BaseException as e:
            if isinstance(e, (Exception, asyncio.CancelledError)):
                raise
            hold.error = e              # SystemExit, say: asyncio would re-raise it out of the loop
            return None
        finally:        # the task is done when the pass ends; a done callback costs a pass
            self.finished.append(hold)

    def detach(self, conn: Conn, coro: Coroutine[Any, Any, Any], what: str) -> None:
        """Coroutines of a closed port's stop / stop_select: run in turn, nothing waits."""
        queued = self.after.get(conn)
        if queued is None:
            queued = self.after[conn] = deque()
            task = self.loop.create_task(self.run_after(conn, queued))
            self.cleanup.add(task)
            task.add_done_callback(self.cleanup.discard)
        queued.append((coro, what))

    async def run_after(self, conn: Conn,
                        queued: deque[tuple[Coroutine[Any, Any, Any], str]]) -> None:
        while queued:
            coro, what = queued.popleft()
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except BaseException as e:  # noqa: BLE001 - SystemExit too: logged
                conn.log_exception(e, what)
        del self.after[conn]

    def shutdown(self) -> None:
        """Every port is closed (their coroutines cancelled): give the coroutines, and the
        stops that wait for them, a while to end; cancel whatever else drivers started."""
        self.sel.passes = False             # the loop may sleep in its own select now
        for task in asyncio.all_tasks(self.loop):
            if task not in self.cleanup:
                task.cancel()
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while True:
            while self.finished:
                self.finished.popleft().finish()
            tasks = asyncio.all_tasks(self.loop)
            left = deadline - time.monotonic()
            if not tasks or left <= 0:
                break
            self.loop.run_until_complete(
                asyncio.wait(tasks, timeout=left, return_when=asyncio.FIRST_COMPLETED))
        for conn in list(self.conns):
            if conn.hold is not None:
                log.warning("pybridge port %s: %s did not end at shutdown; stop runs anyway",
                            conn.spec, conn.hold.what)
                conn.hold.finish()


class _PassSelector(selectors.EpollSelector):
    """The loop's selector. Where the loop would sleep (or after PASSES passes) it polls
    instead and stops the loop, noting when it wants to run next."""

    def __init__(self, aio: Aio) -> None:
        super().__init__()
        self.aio = aio
        self.passes = True

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if not self.passes:
            return super().select(timeout)
        aio = self.aio
        ready = super().select(0)
        aio.passes_left -= 1
        if ready or timeout == 0:
            aio.wake_at = 0.0
            if aio.passes_left > 0:
                return ready
        else:
            aio.wake_at = math.inf if timeout is None else time.monotonic() + timeout
        aio.loop.stop()
        return ready


class _Loop(asyncio.SelectorEventLoop):
    """Tells Aio of callbacks and timers added between passes (create_task in a callback;
    other threads' call_soon_threadsafe wake the loop's epoll through its self-pipe)."""

    def __init__(self, aio: Aio, selector: _PassSelector) -> None:
        self.aio = aio
        super().__init__(selector)

    # typeshed spells the arguments with a TypeVarTuple; these pass them on unchanged
    def call_soon(  # type: ignore[override]
            self, callback: Callable[..., object], *args: Any,
            context: contextvars.Context | None = None) -> asyncio.Handle:
        self.aio.wake_at = 0.0
        return super().call_soon(callback, *args, context=context)

    def call_at(  # type: ignore[override]
            self, when: float, callback: Callable[..., object], *args: Any,
            context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        if when < self.aio.wake_at:
            self.aio.wake_at = when
        return super().call_at(when, callback, *args, context=context)
