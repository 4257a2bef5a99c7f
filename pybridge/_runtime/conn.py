"""One port in the worker: its Driver instance, the state the C side keeps for it, the
PortBackend its handle calls, the running of its callbacks, and its close.

Wire format: docs/PROTOCOL.md. The port's frames come from its Channel (read by the
worker's loop, on_readable) and go to handlers, the table _runtime.handlers makes; what the
port sends goes out through the channel's one writer (send). Callbacks run one at a time:
on the loop thread (driver-level locking, the default), or, for a class with
ERL_DRV_FLAG_USE_PORT_LOCKING, on the port's own thread (_runtime.runner), the loop thread
relaying what it reads. A driver call that waits for the emulator (ask) sets the frames that
arrive meanwhile aside, or, on a port's thread, waits for the loop thread to bring its answer.
"""
from __future__ import annotations

import functools
import logging
import selectors
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from types import CoroutineType
from typing import Any, Protocol, cast

from .._api.driver import (
    PORT_CONTROL_FLAG_BINARY,
    SELECT_READ,
    SELECT_USE,
    SELECT_WRITE,
    CallbackName,
    Driver,
    Monitor,
    Port,
)
from .._errors import ProtocolError, WorkerError
from .._types import LocalPid, Pid
from .._wire import protocol as P
from .._wire.reader import Body
from .._wire.termprog import program
from . import views
from .atoms import AtomTable
from .channel import Channel
from .entry import Entry
from .erlcalls import ErlCalls
from .pids import Node
from .poller import Poller
from .runner import Busy, Runner
from .threads import TRANSPORT_OPS, Answer, Loop, PortThreads, Waiter
from .watch import Watch

log = logging.getLogger("pybridge")

U32_FROM = P.U32.unpack_from

Handler = Callable[["Conn", int, int, bytes], None]


class Host(Loop, Protocol):
    """What a port needs of the worker that serves it (_runtime.worker.Worker)."""

    sel: Poller
    max_frame: int
    rbuf: memoryview                # the read buffer every port's reader shares
    node: Node                      # makes the pids the driver names (_runtime.pids)
    atoms: AtomTable                # atom indices for big maps' order (_runtime.atoms)
    later: list[tuple[Conn, CallbackName, Any]]   # callbacks due after this turn
    conns: set[Conn]
    busy: Busy                      # what the loop thread runs, for the watchdog
    handed: bool                    # a port's thread was given work this turn
    calls: ErlCalls                 # Port.call_erlang's, of the whole worker

    def load(self, conn: Conn, text: str) -> tuple[type[Driver], str]: ...

    def port_opened(self, serial: int) -> None: ...

    def take_shm_fd(self, serial: int) -> int: ...

    def adopt(self, serial: int, deadline: float) -> Conn: ...

    def start_coroutine(self, conn: Conn, coro: Coroutine[Any, Any, Any], what: str,
                        answer: Callable[[Any], object] | None, rid: int) -> None: ...


class Held(Protocol):
    """A pending coroutine that holds the port (_runtime.aio.Hold)."""

    what: str

    @property
    def full(self) -> bool: ...

    def frame(self, op: int, fl: int, rid: int, body: bytes) -> None: ...

    def output(self, pieces: list[Body]) -> None: ...

    def later(self, fn: Callable[..., object], *args: Any) -> None: ...

    def park(self, w: Watch) -> None: ...

    def unpark(self, fileobj: Any) -> None: ...

    def close(self, call_stop: bool) -> None: ...

    def finish(self) -> None: ...


class Conn(PortThreads):
    """One port: its channel, its Driver instance and what the C side told it."""

    host: Host
    port_class: type[Port] = Port       # the handle's class (cconn.CConn's: the compiled one)

    def __init__(self, host: Host, rfd: int, wfd: int, handlers: dict[int, Handler],
                 serial: int) -> None:
        self.host = host
        self.channel = channel = Channel(rfd, wfd, host.max_frame, host.rbuf, host.sel,
                                         self.queued)
        self.runner: Runner | None = None   # port-level locking: the port's thread
        self.busy = host.busy           # the runner's once there is one (lock_mode)
        self.writer = channel.writer
        self.send = self.writer.send                # the one writer method
        self.send_parts = self.writer.send_parts
        self.handlers = handlers
        self.serial = serial            # of the CTL_NEW_PORT that brought the channel
        self.pending: deque[Callable[[], object]] = deque()    # set aside by an ask
        self.ask_id = 0
        self.instance: Driver | None = None
        self.output_fn: Callable[[Body], object] | None = None
        self.outputv_fn: Callable[[list[Body]], object] | None = None
        self.zero_copy = False          # output(v) gets memoryviews (_runtime.views)
        self.output_async = False       # that output(v) is async def
        self.call_erlang, self.call_erlang_async = host.calls.bound(self)  # never routed
        self.learn_atoms = functools.partial(host.atoms.learn, self)    # encode's learn
        self.port = self.port_class(Entry(self).backend())
        self.port_raw = self.caller_raw = self.connected_raw = 0
        self.control_flags = 0
        self.timeout_ms = P.DEFAULT_TIMEOUT_MS
        self.none_atom = "undefined"
        self.spec = ""
        self.module = ""            # the full name of the spec's module (a reload looks for it)
        self.open_paths = ""        # open's -p argument: its python_path, still encoded
        self.closed = False
        self.quiet = False              # closed for now, until its coroutine has unwound
        self.timer_gen = 0              # last generation handed out
        self.active_gen = 0             # the timer that may still call timeout (0: none)
        self.timer_deadline = 0.0
        self.queue: deque[bytes] = deque()
        self.qsize = 0
        self.monitors: dict[bytes, Monitor] = {}
        self.watches: dict[Any, Watch] = {}
        self.hold: Held | None = None   # the coroutine this port waits for (_runtime.aio)
        self.limit = host.limit         # seconds a callback may run (callback_limit)
        self.closing = False            # port-level: its close is under way
        self.waiting: Waiter | None = None      # port-level: the ask the port's thread waits on

    # -- PortBackend: what the handle calls (send and send_parts are the writer's) --
    def output_term(self, term: Any) -> None:
        self.send(P.DRV_OUTPUT_TERM, program(term, self.port, self.none_atom))

    def send_term(self, pid: Pid, term: Any) -> None:
        if isinstance(pid, LocalPid) and pid.origin is self.port:
            to = b"\x00" + P.U64.pack(pid.raw)
        else:
            etf = b"\x83" + pid.binary()
            to = b"\x01" + P.U32.pack(len(etf)) + etf
        self.send(P.DRV_SEND_TERM, to + program(term, self.port, self.none_atom))

    def set_control_flags(self, flags: int) -> None:
        self.control_flags = flags & PORT_CONTROL_FLAG_BINARY
        self.send(P.DRV_SET_CONTROL_FLAGS, P.U32.pack(flags & 0xFFFFFFFF))

    def set_timer(self, ms: int) -> None:
        self.timer_gen = self.timer_gen % 0xFFFFFFFF + 1
        self.active_gen = self.timer_gen
        self.timer_deadline = time.monotonic() + ms / 1000
        self.send(P.DRV_SET_TIMER, P.U64.pack(ms) + P.U32.pack(self.active_gen))

    def cancel_timer(self) -> None:
        self.active_gen = 0
        self.send(P.DRV_CANCEL_TIMER)

    def read_timer(self) -> int:
        if not self.active_gen:
            return 0
        return max(0, round((self.timer_deadline - time.monotonic()) * 1000))

    def enq(self, pieces: list[bytes], front: bool) -> None:
        for data in reversed(pieces) if front else pieces:
            if not data:
                continue
            if front:
                self.queue.appendleft(data)
            else:
                self.queue.append(data)
            self.qsize += len(data)
            self.send(P.DRV_PUSHQ if front else P.DRV_ENQ, data)

    def deq(self, n: int) -> int:
        if not 0 <= n <= self.qsize:
            raise ValueError(f"deq({n}) with {self.qsize} bytes queued")
        left = n
        while left:
            head = self.queue[0]
            if len(head) <= left:
                self.queue.popleft()
                left -= len(head)
            else:
                self.queue[0] = head[left:]
                left = 0
        self.qsize -= n
        if n:
            self.send(P.DRV_DEQ, P.U64.pack(n))
        return self.qsize

    def peekq(self) -> list[bytes]:
        return list(self.queue)

    def sizeq(self) -> int:
        return self.qsize

    def monitor(self, pid: LocalPid) -> Monitor | None:
        status, data = self.ask(P.DRV_MONITOR, P.U64.pack(pid.raw))
        if status:
            return None
        mon = Monitor(data, pid)
        self.monitors[data] = mon
        return mon

    def demonitor(self, monitor: Monitor) -> None:
        if self.monitors.pop(monitor.data, None) is not None:
            self.send(P.DRV_DEMONITOR, monitor.data)
            monitor.pid = None

    def monitored(self, monitor: Monitor) -> Pid | None:
        return monitor.pid if monitor.data in self.monitors else None

    def create_port(self, owner: LocalPid) -> Port:
        text = f"-p {self.open_paths} {self.spec}" if self.open_paths else self.spec
        status, data = self.ask(P.DRV_CREATE_PORT, P.U64.pack(owner.raw) + text.encode())
        if status:
            raise WorkerError("driver_create_port failed" if status == 1 else "unknown owner")
        conn = self.host.adopt(P.U32.unpack_from(data)[0],
                               time.monotonic() + self.timeout_ms / 1000)
        if conn.instance is None:
            raise WorkerError(f"the new port could not load {self.spec}")
        conn.timeout_ms = self.timeout_ms
        return conn.port

    def async_(self, fn: Callable[..., Any], args: tuple[Any, ...], key: Any) -> Future[Any]:
        return self.host.jobs.submit(self, fn, args, key)

    def select(self, fileobj: Any, mode: int, on: bool) -> None:
        if not self.host.on_loop():     # the Poller is the loop thread's
            self.host.jobs.call(self.select, fileobj, mode, on)
            return
        if self.hold is not None:
            self.hold.unpark(fileobj)
        ev = (selectors.EVENT_READ if mode & SELECT_READ else 0) | \
             (selectors.EVENT_WRITE if mode & SELECT_WRITE else 0)
        w = self.watches.get(fileobj)
        if w is None:
            if not on:
                return
            w = self.watches[fileobj] = Watch(self, fileobj)
        if w.parked is not None:        # its ready callback runs: watched again after it
            w.parked = w.parked | ev if on else w.parked & ~ev
        else:
            new = w.events | ev if on else w.events & ~ev
            # registering raises if another port selects it: as in ERTS
            self.host.sel.update(fileobj, w.events, new, w)
            w.events = new
        if not on and mode & SELECT_USE:
            del self.watches[fileobj]
            self.host.later.append((self, "stop_select", fileobj))

    def caller(self) -> Pid:
        return self.local_pid(self.caller_raw)

    def connected(self) -> Pid:
        return self.local_pid(self.connected_raw)

    def driver(self) -> Driver | None:
        return self.instance

    def timeout(self) -> int:
        return self.timeout_ms

    def raw(self) -> int:
        return self.port_raw

    def ask(self, op: int, body: bytes = b"") -> tuple[int, bytes]:
        """A driver API call that needs the emulator's answer (status, data). Frames that
        arrive meanwhile wait in ``pending``: callbacks never run inside one another."""
        if self.closed or self.closing:
            raise WorkerError("the port is closed")
        self.ask_id = self.ask_id % 0xFFFFFFFF + 1
        deadline = time.monotonic() + self.timeout_ms / 1000
        if self.runner is not None and self.runner.on_thread():
            return self.ask_from_thread(op, body, deadline)
        self.send(op, body, rid=self.ask_id)
        self.flush_blocking(deadline)
        answer = Answer(self, self.ask_id)
        reader = self.channel.reader
        while True:
            reader.drain(answer)
            if answer.body is not None:
                return answer.body[0], answer.body[1:]
            if not self.channel.wait_readable(deadline - time.monotonic()):
                raise WorkerError("the node did not answer a driver call in time")
            if reader.fill() is False:
                raise WorkerError("the port is gone")

    def local_pid(self, raw: int) -> LocalPid:
        return LocalPid(raw, self.host.node.pid, self.port)

    # -- input: the FrameSink of the channel's reader --
    def on_readable(self) -> None:
        self.took(self.channel.reader.fill())

    def took(self, filled: bool | None) -> None:
        """What on_readable read (the reader's fill()): its whole frames handed out."""
        if filled is False:
            if self.runner is not None:     # EOF until its thread has closed it: not watched
                self.channel.watch(False, False, self)
            self.close()
            return
        try:
            if self.pending:
                self.resume()
            self.channel.reader.drain(self)
        except ProtocolError as e:
            self.bad_frames(e)
            return
        self.flush()

    def bad_frames(self, e: ProtocolError) -> None:
        log.error("pybridge port %s: %s; closing it", self.spec, e)
        self.close()

    def has_input(self) -> bool:
        """Frames wait: set aside by an ask, or read and not handed out."""
        return bool(self.pending) or self.channel.reader.buffered()

    def resume(self) -> None:
        while self.pending and not self.closed:
            self.pending.popleft()()

    def dispatch(self, op: int, fl: int, rid: int, body: bytes) -> None:
        runner = self.runner
        if runner is not None and not runner.on_thread():
            self.relay(op, fl, rid, body)
            return
        if self.hold is not None and op not in TRANSPORT_OPS:
            self.hold.frame(op, fl, rid, body)
            return
        handler = self.handlers.get(op)
        if handler is None:
            raise ProtocolError(f"unknown opcode {op:#x}")
        try:
            handler(self, fl, rid, body)
        except struct.error as e:
            # a body shorter than its opcode needs: this port's peer is broken, not the worker
            raise ProtocolError(f"opcode {op:#x} with a {len(body)}-byte body") from e

    def relay(self, op: int, fl: int, rid: int, body: bytes) -> None:
        """Port-level locking, on the loop thread: a frame for the port's thread, but the
        answer its ask waits for and the transport's own frames, handled here."""
        if op == P.PY_ANSWER:
            waiter = self.waiting
            if waiter is not None and waiter.rid == rid:
                waiter.body = body
                waiter.done.set()
        elif op in TRANSPORT_OPS:
            with self.writer.lock:
                self.handlers[op](self, fl, rid, body)
        elif not self.closing and self.runner is not None:
            self.host.handed = True
            self.runner.submit(self.dispatch, op, fl, rid, body)

    def on_output(self, body: Body) -> None:
        if self.runner is not None and not self.runner.on_thread():
            self.runner.submit(self.on_output, views.kept([body])[0])
            return
        n = U32_FROM(body, 0)[0] if len(body) >= 4 else -1
        if n + 4 == len(body):          # the common case: one piece
            pieces = [body[4:]]
        else:
            pieces, off, end = [], 0, len(body)
            while off < end:
                n = U32_FROM(body, off)[0]
                pieces.append(body[off + 4:off + 4 + n])
                off += 4 + n
        self.deliver(pieces)

    def deliver(self, pieces: list[Body]) -> None:
        runner = self.runner
        if runner is not None and not runner.on_thread():
            runner.submit(self.deliver, views.kept(pieces))
            return
        if self.hold is not None:
            self.hold.output(views.kept(pieces))
            return
        try:
            if self.zero_copy and (self.outputv_fn or self.output_fn) is not None:
                r = views.call(self.outputv_fn, self.output_fn, pieces, self.output_async)
            elif self.outputv_fn is not None:
                r = self.outputv_fn(pieces)
            elif self.output_fn is not None:
                r = self.output_fn(pieces[0] if len(pieces) == 1 else b"".join(pieces))
            else:
                log.warning("%s has neither output nor outputv: %d bytes from Erlang ignored",
                            self.spec, sum(map(len, pieces)))
                return
            if r is not None and r.__class__ is CoroutineType:
                self.run_coroutine(cast(Coroutine[Any, Any, Any], r), "output")
        except BaseException as e:  # noqa: BLE001 - SystemExit too: the callback's, logged
            self.log_exception(e, "output")

    def attach_shm(self, half: int) -> None:
        """PY_SHM_ATTACH: map the region CTL_SHM brought for this port."""
        try:
            self.channel.attach(self.host.take_shm_fd(self.serial), half)
        except OSError as e:
            # this port cannot go on (its large bodies would be lost); the others can
            log.error("pybridge port %s: cannot map its shared memory (%s); closing it",
                      self.spec, e, extra={"pybridge_port": self.port_raw, "driver": self.spec})
            self.close()

    # -- output: the loop flushes what callbacks queued --
    def flush(self) -> None:
        if threading.get_ident() != self.host.loop_ident:     # rearm is the loop thread's
            self.push()
            return
        self.host.dirty.discard(self)
        if self.writer.out and not self.closed and not self.writer.write_out():
            self.close()
            return
        self.rearm()

    def flush_blocking(self, deadline: float) -> None:
        """Push everything out now (used before waiting on the node inside a callback)."""
        while self.writer.out and not self.closed:
            self.flush()
            if self.writer.out:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WorkerError("the node does not read this port's channel")
                self.channel.wait_writable(left)

    def rearm(self) -> None:
        if not self.closed:
            self.channel.rearm(self.hold is None or not self.hold.full, self)

    # -- callbacks --
    def call_back(self, name: CallbackName, *args: Any) -> None:
        """Run an optional callback (a missing one is a NULL entry), logging what it raises."""
        runner = self.runner
        if runner is not None and not runner.on_thread():
            runner.submit(self.call_back, name, *args)
            return
        if self.hold is not None:
            self.hold.later(self.call_back, name, *args)
            return
        fn = getattr(self.instance, name, None)
        if fn is None:
            return
        try:
            r = fn(*args)
            if r.__class__ is CoroutineType:
                self.run_coroutine(r, name)
        except BaseException as e:  # noqa: BLE001 - SystemExit too: the callback's, logged
            self.log_exception(e, name)

    def run_coroutine(self, coro: Coroutine[Any, Any, Any], what: str,
                      answer: Callable[[Any], object] | None = None, rid: int = 0) -> None:
        """A callback returned a coroutine: it runs on the worker's asyncio loop, and this
        port's other callbacks wait for it (_runtime.aio)."""
        self.host.start_coroutine(self, coro, what, answer, rid)

    def log_exception(self, exc: BaseException, what: str) -> None:
        log.error("%s in %s.%s: %s", type(exc).__name__, self.spec, what, exc,
                  exc_info=exc, extra={"pybridge_port": self.port_raw, "driver": self.spec})

    def on_job_done(self, fut: Future[Any]) -> None:
        exc = fut.exception()
        if exc is not None:
            self.log_exception(exc, "an async_ job")
            return
        if self.instance is None:
            # the port closed while the job ran: say so rather than drop it unseen
            log.warning("pybridge port %s closed before its async_ job finished; "
                        "result %.200r dropped", self.spec, fut.result(),
                        extra={"pybridge_port": self.port_raw, "driver": self.spec})
            return
        self.call_back("ready_async", fut.result())

    # -- close --
    def quieten(self) -> None:
        """Closed for its handle's methods, nothing read or watched, until close(...,
        quieted=True): while the coroutine that holds the port unwinds."""
        for w in self.watches.values():
            if w.events:
                self.host.sel.unregister(w.fileobj)
                w.events = 0
        self.channel.watch(False, False, self)
        self.closed = self.quiet = True
        self.writer.closed = True

    def close(self, call_stop: bool = True, quieted: bool = False) -> None:
        if self.closed:
            if not (quieted and self.quiet):
                return
            self.closed = self.quiet = self.writer.closed = False   # quiet: now close for real
        runner = self.runner
        if self.hold is not None or (runner is not None and not runner.on_thread()):
            if not self.host.on_loop():     # the coroutine and the Poller are the loop's
                self.host.post(functools.partial(self.close, call_stop, quieted))
                return
            if self.hold is not None:       # its coroutine is cancelled first; stop after it
                self.hold.close(call_stop)
                return
        if runner is None:
            self.unwatch()
            self.stop_instance(call_stop)
            self.release()
        elif not runner.on_thread() and not runner.stopped:
            runner.submit(self.close, call_stop)    # stop runs on the port's thread
        elif not self.closing:
            self.closing = True
            if runner.stopped:              # hung: its thread may never come back
                self.instance = None
                self.release()
            else:
                self.host.jobs.call(self.unwatch)   # before stop_select may close them
                self.stop_instance(call_stop)
                self.host.post(self.release)

    def unwatch(self) -> None:
        """On the loop thread: the file objects the port selects are watched no more."""
        for w in self.watches.values():
            if w.events:
                self.host.sel.unregister(w.fileobj)
                w.events = 0
            w.parked = None

    def stop_instance(self, call_stop: bool) -> None:
        """stop, then stop_select of each file object still selected."""
        drv, self.instance = self.instance, None
        if drv is not None and call_stop:
            try:
                r = drv.stop()
                if r.__class__ is CoroutineType:
                    self.run_coroutine(cast(Coroutine[Any, Any, None], r), "stop")
            except BaseException as e:  # noqa: BLE001 - SystemExit too: logged
                self.log_exception(e, "stop")
        for fileobj in list(self.watches) if drv is not None else ():
            try:
                r = getattr(drv, "stop_select", lambda f: None)(fileobj)
                if r.__class__ is CoroutineType:
                    self.run_coroutine(r, "stop_select")
            except BaseException as e:  # noqa: BLE001 - SystemExit too: logged
                self.log_exception(e, "stop_select")

    def release(self) -> None:
        """On the loop thread: nothing more is watched, read or sent."""
        self.unwatch()                          # what stop selected again
        self.watches.clear()
        self.closed = True
        waiter = self.waiting
        if waiter is not None:                  # an ask of the port's thread: the port is gone
            waiter.done.set()
        self.channel.close(self)
        self.host.conns.discard(self)

