"""The worker process: one event loop serving every port the node gives it.

Wire format: docs/PROTOCOL.md. fd 3 (or --fd) is the ctl socket to the manager port;
each port arrives as two pipes in CTL_NEW_PORT (from the driver, to it), or as one
socket when the node runs short of descriptors, and is served in order on them.
Callbacks run one at a time; outputs are batched per read and written without blocking,
and reading a port pauses while too much of its output is unsent.
"""
from __future__ import annotations

import array
import ctypes
import functools
import importlib
import importlib.machinery
import io
import logging
import mmap
import os
import re
import resource
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from collections import deque
from collections.abc import Coroutine
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Callable, cast

from . import __version__
from . import _protocol as P
from ._codec import decode, encode
from ._driver import (
    PORT_CONTROL_FLAG_BINARY,
    SELECT_READ,
    SELECT_USE,
    SELECT_WRITE,
    Driver,
    Monitor,
    Port,
)
from ._errors import BadArg, WorkerError
from ._jobs import JobPool, share
from ._termprog import program
from ._types import Atom, ImproperList, LocalPid, Pid

if TYPE_CHECKING:
    from ._aio import Aio, Hold

log = logging.getLogger("pybridge")

U32_FROM = P.U32.unpack_from
HEADER_FROM = P.HEADER.unpack_from
HEADER_PACK = P.HEADER.pack
FL_SHM = P.FL_SHM
SHM_REF = struct.Struct(">QQ").pack
SHM_REF_FROM = struct.Struct(">QQ").unpack
OUT_HIGH = 8 << 20          # unsent bytes of one port that pause reading it
OUT_FLUSH = 64 << 10        # queued bytes written at once, inside a callback that goes on
READ_SIZE = 256 << 10
# frames about the transport itself: handled at once even while a coroutine holds the port
TRANSPORT_OPS = frozenset((P.PY_SHM_ATTACH, P.PY_SHM_RELEASE))
EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
EPOLL_OF = (0, EPOLLIN, EPOLLOUT, EPOLLIN | EPOLLOUT)     # by selectors' EVENT_* bits
SPEC_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_]\w*$")


def error_term(exc: BaseException) -> tuple[Atom, Atom, bytes, bytes]:
    cls = type(exc)
    return (Atom("python"), Atom(f"{cls.__module__}.{cls.__qualname__}"), str(exc).encode(),
            "".join(traceback.format_exception(exc)).encode())


def flatten_iodata(d: Any) -> bytes:
    if isinstance(d, (bytes, bytearray)):
        return bytes(d)
    if isinstance(d, int) and 0 <= d < 256:
        return bytes((d,))
    if isinstance(d, list):
        return b"".join(flatten_iodata(x) for x in d)
    if isinstance(d, ImproperList):
        return b"".join(flatten_iodata(x) for x in d.items) + flatten_iodata(d.tail)
    raise BadArg("not iodata")


def unwrap_request(term: Any) -> tuple[int, Any, Pid]:
    """{Command, Data, Caller} of pybridge:control/call; anything else is badarg."""
    if not (isinstance(term, tuple) and len(term) == 3 and isinstance(term[0], int)
            and isinstance(term[2], Pid)):
        raise BadArg("a reserved port_call command needs {Command, Data, self()}")
    return term


def reply_bytes(r: Any) -> bytes:
    if isinstance(r, (bytes, bytearray, memoryview)):
        return bytes(r)
    if isinstance(r, str):
        return r.encode()
    raise TypeError(f"control must return bytes, str or None, not {type(r).__name__}")


class Conn:
    """One port: its channel, its Driver instance and what the C side told it."""

    def __init__(self, worker: Worker, rfd: int, wfd: int) -> None:
        self.worker = worker
        self.rfd, self.wfd = rfd, wfd   # pipes from and to the driver, or one socket
        self.inbuf = bytearray()
        self.inpos = 0                  # frames before it are handled
        self.reads = 0                  # fills so far: inbuf may have moved
        self.pending: deque[tuple[int, int, int, bytes]] = deque()
        self.ask_id = 0
        self.out: list[bytes | memoryview] = []   # memoryview: an unsent tail
        self.outlen = 0
        self.write_at = OUT_FLUSH        # outlen at which send() writes at once
        self.driver: Driver | None = None
        self.output_fn: Callable[[bytes], object] | None = None
        self.outputv_fn: Callable[[list[bytes]], object] | None = None
        self.port = Port(self)
        self.port_raw = self.caller_raw = self.connected_raw = 0
        self.control_flags = 0
        self.timeout_ms = 5000
        self.none_atom = "undefined"
        self.spec = ""
        self.reading = self.writing = False     # registered with the worker's Poller
        self.closed = False
        self.timer_gen = 0              # last generation handed out
        self.active_gen = 0             # the timer that may still call timeout (0: none)
        self.timer_deadline = 0.0
        self.queue: deque[bytes] = deque()
        self.qsize = 0
        self.monitors: dict[bytes, Monitor] = {}
        self.watches: dict[Any, Watch] = {}
        self.hold: Hold | None = None   # the coroutine this port waits for (_aio)
        self.threads = 0                # async_ jobs and coroutines running (_jobs.share)
        self.serial = 0                 # of the CTL_NEW_PORT that brought the channel
        # shared memory (PROTOCOL.md): the driver's ring in, ours out; positions monotonic
        self.shm: mmap.mmap | None = None
        self.shm_in: memoryview | None = None
        self.shm_out: memoryview | None = None
        self.shm_half = self.shm_wpos = self.shm_wrel = 0
        self.shm_wanted = False

    # -- driver API state kept on this side --
    def program(self, term: Any) -> bytes:
        return program(term, self, self.none_atom)

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

    def enq(self, data: bytes, front: bool) -> None:
        if not data:
            return
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

    # -- output side --
    def send(self, op: int, body: bytes = b"", fl: int = 0, rid: int = 0) -> None:
        if self.closed:
            return
        n = len(body)
        if n + 6 > self.worker.max_frame:
            raise ValueError(f"{n} bytes is over the max_frame limit ({self.worker.max_frame})")
        if n >= P.SHM_MIN and self.send_shm(op, [body], n, fl, rid):
            return
        # small bodies are joined to their header now: one object per frame to join later
        if n < 512:
            self.out.append(HEADER_PACK(n + 6, op, fl, rid) + body)
        else:
            self.out.append(HEADER_PACK(n + 6, op, fl, rid))
            self.out.append(body)
        self.outlen += 10 + n
        if self.outlen >= self.write_at:
            # a long callback's output reaches Erlang while it runs, not all at its end;
            # the loop's flush() still follows (errors, the rest, select)
            self.write_out()
        # a callback of one port may write to another (create_port): the loop flushes all
        self.worker.dirty.add(self)

    def send_parts(self, op: int, parts: list[bytes]) -> None:
        """send() of a body given in parts: a large one goes to the ring without joining."""
        n = sum(map(len, parts))
        if not (n >= P.SHM_MIN and not self.closed and self.send_shm(op, parts, n, 0, 0)):
            self.send(op, b"".join(parts))

    def send_shm(self, op: int, parts: list[bytes], n: int, fl: int, rid: int) -> bool:
        """Put a large body in our ring and send its place; False: send it inline."""
        out, half = self.shm_out, self.shm_half
        if out is None:
            if not self.shm_wanted:
                self.shm_wanted = True
                self.send(P.DRV_SHM_WANT)
            return False
        pos, rel = self.shm_wpos, self.shm_wrel
        at = pos % half
        if at and pos == rel:           # empty: the front, whose cache is warm
            pos = rel = pos + half - at
            at = 0
        elif at + n > half:             # a body never wraps
            pos += half - at
            at = 0
        if n > half or pos + n - rel > half:
            return False
        for part in parts:
            k = len(part)
            out[at:at + k] = part
            at += k
        self.shm_wpos, self.shm_wrel = pos + n, rel
        self.out.append(HEADER_PACK(6 + 16, op, fl | P.FL_SHM, rid) + SHM_REF(pos, n))
        self.outlen += P.HDR_LEN + 16     # the frame on the channel: header and pos/len
        self.worker.dirty.add(self)
        return True

    def attach_shm(self, body: bytes) -> None:
        half = P.U64.unpack(body)[0]
        fd = self.worker.take_shm_fd(self.serial)
        try:
            self.shm = mmap.mmap(fd, 2 * half)      # holds a dup of fd: EMFILE is possible
        except OSError as e:
            # this port cannot go on (its large bodies would be lost); the others can
            log.error("pybridge port %s: cannot map its shared memory (%s); closing it",
                      self.spec, e, extra={"pybridge_port": self.port_raw, "driver": self.spec})
            self.close()
            return
        finally:
            os.close(fd)
        view = memoryview(self.shm)
        self.shm_in, self.shm_out, self.shm_half = view[:half], view[half:], half

    def shm_view(self, ref: bytes) -> memoryview:
        """Where the body of a FL_SHM frame is in the driver's ring. Its space is handed back
        with the next flush: copy it out before anything can flush."""
        if self.shm_in is None or len(ref) != 16:
            raise P.ProtocolError("FL_SHM frame without shared memory")
        pos, n = SHM_REF_FROM(ref)
        at = pos % self.shm_half
        if at + n > self.shm_half:
            raise P.ProtocolError("FL_SHM body outside the ring")
        self.send(P.DRV_SHM_RETURN, P.U64.pack(pos + n))
        return self.shm_in[at:at + n]

    def shm_body(self, ref: bytes) -> bytes:
        return bytes(self.shm_view(ref))

    def flush(self) -> None:
        self.worker.dirty.discard(self)
        if self.out and not self.closed and not self.write_out():
            self.close()
            return
        self.rearm()

    def write_out(self) -> bool:
        """Write what the pipe takes now. False: the driver's end is gone."""
        out = self.out
        while out:
            # small pieces go in one write; a large unsent head is written alone, so that
            # a full pipe never has everything queued joined again at each try
            if len(out) > 1 and len(out[0]) < OUT_FLUSH:
                out[:] = [b"".join(out)]
            data = out[0]
            try:
                n = os.write(self.wfd, data)
            except BlockingIOError:
                break
            except OSError:
                return False
            self.outlen -= n
            if n < len(data):
                out[0] = memoryview(data)[n:]
                break
            del out[0]
        self.write_at = self.outlen + OUT_FLUSH
        return True

    def flush_blocking(self, deadline: float) -> None:
        """Push everything out now (used before waiting on the node inside a callback)."""
        while self.out and not self.closed:
            self.flush()
            if self.out:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WorkerError("the node does not read this port's channel")
                select.select([], [self.wfd], [], left)

    def rearm(self) -> None:
        if self.closed:
            return
        reading = self.outlen < OUT_HIGH and (self.hold is None or not self.hold.full)
        writing = bool(self.out)
        if reading != self.reading or writing != self.writing:
            self.watch(reading, writing)

    def unwatch(self) -> None:
        """Nothing more from the Poller for this port."""
        self.watch(False, False)

    def watch(self, reading: bool, writing: bool) -> None:
        """What the Poller wakes this port for: each pipe apart, or one socket for both."""
        update, rd, wr = self.worker.sel.update, selectors.EVENT_READ, selectors.EVENT_WRITE
        if self.rfd == self.wfd:
            update(self.rfd, (rd if self.reading else 0) | (wr if self.writing else 0),
                   (rd if reading else 0) | (wr if writing else 0), self)
        else:
            update(self.rfd, rd if self.reading else 0, rd if reading else 0, self)
            update(self.wfd, wr if self.writing else 0, wr if writing else 0, self)
        self.reading, self.writing = reading, writing

    # -- input side --
    def on_readable(self) -> None:
        if self.fill() is False:
            self.close()
            return
        try:
            while self.pending and not self.closed:
                self.dispatch(*self.pending.popleft())
            # take_frame inlined: this loop runs once per message from Erlang
            buf, off, dispatch = self.inbuf, self.inpos, self.dispatch
            on_output, deliver = self.on_output, self.deliver
            end = len(buf)
            while end - off >= 4 and not self.closed:
                n = U32_FROM(buf, off)[0]
                if n < 6 or n > self.worker.max_frame:
                    raise P.ProtocolError(f"bad frame length {n}")
                if end - off - 4 < n:
                    break
                _, op, fl, rid = HEADER_FROM(buf, off)
                start = off + 10
                off = self.inpos = off + 4 + n
                reads = self.reads
                if fl & FL_SHM:
                    view = self.shm_view(bytes(buf[start:off]))
                    if op == P.PY_OUTPUT and not rid and U32_FROM(view, 0)[0] == len(view) - 4:
                        deliver([bytes(view[4:])])  # one piece: one copy
                    else:
                        dispatch(op, fl & ~FL_SHM, rid, bytes(view))
                    del view
                elif op == P.PY_OUTPUT and not rid:
                    if n >= 10 and U32_FROM(buf, start)[0] == n - 10:    # one piece
                        deliver([bytes(buf[start + 4:off])])
                    else:
                        on_output(bytes(buf[start:off]))
                else:
                    dispatch(op, fl, rid, bytes(buf[start:off]))
                if self.reads != reads or self.inpos != off:
                    # the callback waited for an answer (ask): inbuf moved under us
                    while self.pending and not self.closed:
                        self.dispatch(*self.pending.popleft())
                    off, end = self.inpos, len(buf)
        except P.ProtocolError as e:
            log.error("pybridge port %s: %s; closing it", self.spec, e)
            self.close()
            return
        self.flush()

    def fill(self) -> bool | None:
        """Read what the channel has into inbuf: False at EOF, None if nothing now."""
        rbuf = self.worker.rbuf
        try:
            n = os.readv(self.rfd, (rbuf,))
        except BlockingIOError:
            return None
        except OSError:
            return False
        if not n:
            return False
        if self.inpos and self.inpos >= len(self.inbuf) // 2:
            del self.inbuf[:self.inpos]
            self.inpos = 0
        self.inbuf += rbuf[:n]
        self.reads += 1
        return True

    def take_frame(self) -> tuple[int, int, int, bytes] | None:
        """The next whole frame from inbuf as (op, fl, id, body), or None."""
        buf, off = self.inbuf, self.inpos
        if len(buf) - off < 4:
            return None
        n = P.U32.unpack_from(buf, off)[0]
        if n < 6 or n > self.worker.max_frame:
            raise P.ProtocolError(f"bad frame length {n}")
        if len(buf) - off - 4 < n:
            return None
        _, op, fl, rid = P.HEADER.unpack_from(buf, off)
        self.inpos = off + 4 + n
        body = bytes(buf[off + P.HDR_LEN:self.inpos])
        if fl & FL_SHM:
            return op, fl & ~FL_SHM, rid, self.shm_body(body)
        return op, fl, rid, body

    def ask(self, op: int, body: bytes = b"") -> tuple[int, bytes]:
        """A driver API call that needs the emulator's answer (status, data). Frames that
        arrive meanwhile wait in ``pending``: callbacks never run inside one another."""
        if self.closed:
            raise WorkerError("the port is closed")
        self.ask_id = self.ask_id % 0xFFFFFFFF + 1
        rid = self.ask_id
        deadline = time.monotonic() + self.timeout_ms / 1000
        self.send(op, body, rid=rid)
        self.flush_blocking(deadline)
        while True:
            frame = self.take_frame()
            while frame is not None:
                if frame[0] == P.PY_ANSWER and frame[2] == rid:
                    return frame[3][0], frame[3][1:]
                self.pending.append(frame)
                frame = self.take_frame()
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.rfd], [], [], left)[0]:
                raise WorkerError("the node did not answer a driver call in time")
            if self.fill() is False:
                raise WorkerError("the port is gone")

    def dispatch(self, op: int, fl: int, rid: int, body: bytes) -> None:
        if self.hold is not None and op not in TRANSPORT_OPS:
            self.hold.frame(op, fl, rid, body)
            return
        if op == P.PY_OUTPUT:
            self.on_output(body)
            if rid:                       # strict mode: the driver waits for this
                self.reply(rid)
        elif op == P.PY_CONTROL:
            self.on_control(fl, rid, body)
        elif op == P.PY_CALL:
            self.on_call(fl, rid, body)
        elif op == P.PY_CALLER:
            self.caller_raw = P.U64.unpack(body)[0]
        elif op == P.PY_CONNECTED:
            self.connected_raw = P.U64.unpack(body)[0]
        elif op == P.PY_TIMEOUT:
            self.on_timeout(P.U32.unpack(body)[0])
            if rid:
                self.reply(rid)
        elif op == P.PY_FLUSH:
            self.call_back("flush")
        elif op == P.PY_PROCESS_EXIT:
            self.on_process_exit(body)
        elif op == P.PY_OPEN:
            self.on_open(fl, rid, body)
        elif op == P.PY_STOP:
            self.close()
        elif op == P.PY_SHM_ATTACH:
            self.attach_shm(body)
        elif op == P.PY_SHM_RELEASE:
            self.shm_wrel = P.U64.unpack(body)[0]
        else:
            raise P.ProtocolError(f"unknown opcode {op:#x}")

    def reply(self, rid: int) -> None:
        """The empty answer of strict mode, once the callback has ended (its coroutine too)."""
        if self.hold is None:
            self.send(P.DRV_REPLY, rid=rid)
        else:
            self.hold.later(self.send, P.DRV_REPLY, b"", 0, rid)

    def run_coroutine(self, coro: Coroutine[Any, Any, Any], what: str,
                      answer: Callable[[Any], object] | None = None, rid: int = 0) -> None:
        """A callback returned a coroutine: it runs on the worker's asyncio loop, and this
        port's other callbacks wait for it (_aio)."""
        if self.worker.aio is None:
            from ._aio import Aio  # asyncio is imported by the first coroutine
            self.worker.aio = Aio(self.worker)
        self.worker.aio.start(self, coro, what, answer, rid)

    def fail(self, rid: int, exc: BaseException, what: str) -> None:
        """Answer a request with the exception, and log it with its traceback."""
        if isinstance(exc, BadArg):
            self.send(P.DRV_ERROR, encode(Atom("badarg")), rid=rid)
            return
        self.log_exception(exc, what)
        try:
            body = encode(error_term(exc))
        except Exception:   # a message that cannot be encoded must not lose the answer
            body = encode((Atom("python"), Atom("builtins.Exception"), b"unencodable error", b""))
        self.send(P.DRV_ERROR, body, rid=rid)

    def log_exception(self, exc: BaseException, what: str) -> None:
        log.error("%s in %s.%s: %s", type(exc).__name__, self.spec, what, exc,
                  exc_info=exc, extra={"pybridge_port": self.port_raw, "driver": self.spec})

    def on_open(self, fl: int, rid: int, body: bytes) -> None:
        self.port_raw, self.caller_raw, self.connected_raw = (
            P.U64.unpack_from(body, 0)[0], P.U64.unpack_from(body, 8)[0],
            P.U64.unpack_from(body, 16)[0])
        text = body[24:].decode("utf-8", "replace")
        try:
            cls, command = self.worker.load(self, text)
            drv = cls()
            drv.port = self.port
            self.none_atom = getattr(drv, "none_atom", "undefined")
            self.driver = drv
            # looked up once: output is the hot path
            self.outputv_fn = getattr(drv, "outputv", None)
            self.output_fn = getattr(drv, "output", None)
            if fl & P.FL_CREATED:       # driver_create_port: no start, nobody waits
                return
            r = drv.start(command)
        except BaseException as e:  # noqa: BLE001 - every failure of start is open_port's badarg
            self.open_failed(rid, e)
            return
        if r.__class__ is CoroutineType:
            self.run_coroutine(r, "start", lambda _: self.opened(rid), rid)
        else:
            self.opened(rid)

    def opened(self, rid: int) -> None:
        self.send(P.DRV_REPLY,
                  P.U32.pack(P.OPEN_BLOCKING if getattr(self.driver, "blocking", False) else 0),
                  rid=rid)

    def open_failed(self, rid: int, e: BaseException) -> None:
        self.driver = None
        self.fail(rid, e, "start")
        self.flush()
        self.close(call_stop=False)

    def on_output(self, body: bytes) -> None:
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

    def deliver(self, pieces: list[bytes]) -> None:
        if self.hold is not None:
            self.hold.output(pieces)
            return
        try:
            if self.outputv_fn is not None:
                r = self.outputv_fn(pieces)
            elif self.output_fn is not None:
                r = self.output_fn(pieces[0] if len(pieces) == 1 else b"".join(pieces))
            else:
                log.warning("%s has neither output nor outputv: %d bytes from Erlang ignored",
                            self.spec, sum(map(len, pieces)))
                return
            if r is not None and r.__class__ is CoroutineType:
                self.run_coroutine(cast(Coroutine[Any, Any, Any], r), "output")
        except Exception as e:
            self.log_exception(e, "output")

    def on_timeout(self, gen: int) -> None:
        # a timeout of a timer that was cancelled or replaced meanwhile never reaches the driver
        if gen != self.active_gen:
            return
        self.active_gen = 0
        self.call_back("timeout")

    def create_port(self, owner: Any) -> Port:
        if not (isinstance(owner, LocalPid) and owner.origin is self):
            raise ValueError("create_port takes a pid this port named: caller() or connected()")
        status, data = self.ask(P.DRV_CREATE_PORT, P.U64.pack(owner.raw) + self.spec.encode())
        if status:
            raise WorkerError("driver_create_port failed" if status == 1 else "unknown owner")
        conn = self.worker.adopt(P.U32.unpack_from(data)[0],
                                 time.monotonic() + self.timeout_ms / 1000)
        if conn.driver is None:
            raise WorkerError(f"the new port could not load {self.spec}")
        conn.timeout_ms = self.timeout_ms
        return conn.port

    def async_(self, fn: Callable[..., Any], args: tuple[Any, ...], key: Any) -> Any:
        share(self, 1)                  # before the job starts: it may use self.port
        return self.worker.jobs.submit(self, fn, args, key)

    def on_job_done(self, fut: Any) -> None:
        share(self, -1)
        if fut.exception() is not None:
            self.log_exception(fut.exception(), "an async_ job")
            return
        if self.driver is None:
            # the port closed while the job ran: say so rather than drop it unseen
            log.warning("pybridge port %s closed before its async_ job finished; "
                        "result %.200r dropped", self.spec, fut.result(),
                        extra={"pybridge_port": self.port_raw, "driver": self.spec})
            return
        self.call_back("ready_async", fut.result())

    def select(self, fileobj: Any, mode: int, on: bool) -> None:
        if self.hold is not None:
            self.hold.unpark(fileobj)
        ev = (selectors.EVENT_READ if mode & SELECT_READ else 0) | \
             (selectors.EVENT_WRITE if mode & SELECT_WRITE else 0)
        w = self.watches.get(fileobj)
        if w is None:
            if not on:
                return
            w = self.watches[fileobj] = Watch(self, fileobj)
        new = w.events | ev if on else w.events & ~ev
        # registering raises if another port selects it: as in ERTS
        self.worker.sel.update(fileobj, w.events, new, w)
        w.events = new
        if not on and mode & SELECT_USE:
            del self.watches[fileobj]
            self.worker.later.append((self, "stop_select", fileobj))

    def call_back(self, name: str, *args: Any) -> None:
        """Run an optional callback (a missing one is a NULL entry), logging what it raises."""
        if self.hold is not None:
            self.hold.later(self.call_back, name, *args)
            return
        fn = getattr(self.driver, name, None)
        if fn is None:
            return
        try:
            r = fn(*args)
            if r.__class__ is CoroutineType:
                self.run_coroutine(r, name)
        except Exception as e:
            self.log_exception(e, name)

    def on_process_exit(self, data: bytes) -> None:
        mon = self.monitors.pop(data, None)
        if mon is not None:
            self.call_back("process_exit", mon)


    def on_control(self, fl: int, rid: int, body: bytes) -> None:
        wrapped = fl & P.FL_WRAPPED
        try:
            if wrapped:
                cmd, data, me = unwrap_request(decode(body[4:], self.none_atom))
                self.worker.pids[self.caller_raw] = me
                data = flatten_iodata(data)
            else:
                cmd, data = P.U32.unpack_from(body)[0], body[4:]
            fn = getattr(self.driver, "control", None)
            if fn is None:
                raise BadArg("the driver has no control callback")
            r = fn(cmd, data)
            if r.__class__ is CoroutineType:
                answer = functools.partial(self.control_reply, rid, wrapped)
                self.run_coroutine(r, "control", answer, rid)
            else:
                self.control_reply(rid, wrapped, r)
        except Exception as e:
            self.fail(rid, e, "control")

    def control_reply(self, rid: int, wrapped: int, r: Any) -> None:
        if wrapped:
            b = b"" if r is None else reply_bytes(r)
            if self.control_flags & PORT_CONTROL_FLAG_BINARY and r is not None:
                self.send(P.DRV_REPLY, encode(b), rid=rid)
            else:
                self.send(P.DRV_REPLY, encode(list(b)), rid=rid)
        elif r is None:
            self.send(P.DRV_REPLY, fl=P.FL_NONE, rid=rid)
        else:
            self.send(P.DRV_REPLY, reply_bytes(r), rid=rid)

    def on_call(self, fl: int, rid: int, body: bytes) -> None:
        try:
            term = decode(body[4:], self.none_atom)
            if fl & P.FL_WRAPPED:
                cmd, term, me = unwrap_request(term)
                self.worker.pids[self.caller_raw] = me
            else:
                cmd = P.U32.unpack_from(body)[0]
            fn = getattr(self.driver, "call", None)
            if fn is None:
                raise BadArg("the driver has no call callback")
            r = fn(cmd, term)
            if r.__class__ is CoroutineType:
                self.run_coroutine(r, "call", functools.partial(self.call_reply, rid), rid)
            else:
                self.call_reply(rid, r)
        except Exception as e:
            self.fail(rid, e, "call")

    def call_reply(self, rid: int, r: Any) -> None:
        self.send(P.DRV_REPLY, encode(r, self.none_atom), rid=rid)

    def local_pid(self, raw: int) -> LocalPid:
        return LocalPid(raw, functools.partial(self.worker.resolve_pid, self), self)

    def close(self, call_stop: bool = True) -> None:
        if self.closed:
            return
        if self.hold is not None:       # its coroutine is cancelled first; stop runs after it
            self.hold.close(call_stop)
            return
        drv, self.driver = self.driver, None
        if drv is not None and call_stop:
            try:
                r = drv.stop()
                if r.__class__ is CoroutineType:
                    self.run_coroutine(cast(Coroutine[Any, Any, None], r), "stop")
            except Exception as e:
                self.log_exception(e, "stop")
        for fileobj, w in list(self.watches.items()):
            if w.events:
                self.worker.sel.unregister(fileobj)
            if drv is not None:
                try:
                    r = getattr(drv, "stop_select", lambda f: None)(fileobj)
                    if r.__class__ is CoroutineType:
                        self.run_coroutine(r, "stop_select")
                except Exception as e:
                    self.log_exception(e, "stop_select")
        self.watches.clear()
        self.closed = True
        self.unwatch()
        os.close(self.rfd)
        if self.wfd != self.rfd:
            os.close(self.wfd)
        self.worker.conns.discard(self)
        if self.shm is not None:
            self.shm_in = self.shm_out = None
            try:
                self.shm.close()
            except BufferError:         # a view is still out: the mapping goes with it
                pass


class Watch:
    """A file object a port selects on (driver_select on the worker's own descriptors)."""

    __slots__ = ("conn", "fileobj", "events")

    def __init__(self, conn: Conn, fileobj: Any) -> None:
        self.conn = conn
        self.fileobj = fileobj
        self.events = 0

    def fire(self, ev: int) -> None:
        conn = self.conn
        if conn.hold is not None:
            conn.hold.park(self)
            return
        if ev & selectors.EVENT_READ and self.events & selectors.EVENT_READ:
            conn.call_back("ready_input", self.fileobj)
        if ev & selectors.EVENT_WRITE and self.events & selectors.EVENT_WRITE and not conn.closed:
            conn.call_back("ready_output", self.fileobj)
        conn.flush()


class CtlLogHandler(logging.Handler):
    """Sends log records to Erlang's logger as CTL_LOG frames."""

    LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
              logging.ERROR: "error", logging.CRITICAL: "critical"}

    def __init__(self, ctl: socket.socket) -> None:
        super().__init__()
        self.ctl = ctl

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            if record.exc_info:
                msg += "\n" + "".join(traceback.format_exception(*record.exc_info))
            meta = {Atom("logger"): record.name.encode(), Atom("os_pid"): os.getpid()}
            for k in ("pybridge_port", "driver"):
                if hasattr(record, k):
                    meta[Atom(k)] = getattr(record, k)
            level = Atom(self.LEVELS.get(record.levelno, "notice"))
            self.ctl.sendall(P.frame(P.CTL_LOG, encode((level, msg.encode()[:60000], meta))))
        except Exception:   # logging must never take the worker down
            pass


class Poller:
    """selectors' register/modify/unregister over one epoll, without its per-event
    SelectorKey work: select() gives (data, events) with selectors' EVENT_* bits."""

    def __init__(self) -> None:
        self.ep = select.epoll()
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


class Worker:
    def __init__(self, ctl_fd: int, paths: list[str], async_threads: int = 4,
                 max_frame: int = P.MAX_FRAME, spin_us: int = 50) -> None:
        self.max_frame = max_frame
        self.spin = spin_us / 1e6
        # one read buffer for every port: a fresh 256 KiB bytes per recv costs an mmap
        self.rbuf = memoryview(bytearray(READ_SIZE))
        self.jobs = JobPool(async_threads)
        self.aio: Aio | None = None     # the asyncio loop, from the first coroutine on
        self.later: list[tuple[Conn, str, Any]] = []
        self.dirty: set[Conn] = set()
        self.ctl = socket.socket(fileno=ctl_fd)
        self.ctl.setblocking(True)
        self.sel = Poller()
        self.conns: set[Conn] = set()
        self.pids: dict[int, Any] = {}
        self.new_fds: deque[tuple[int, int, int]] = deque()
        self.shm_fds: dict[int, int] = {}       # port serial -> its region, until attached
        # driver modules come from these directories only (app env python_path, open -p)
        self.allowed: list[str] = []
        self.classes: dict[str, type] = {}
        self.allow(paths)

    def allow(self, paths: list[str]) -> None:
        for p in reversed(paths):
            p = os.path.realpath(p)
            if p not in self.allowed:
                self.allowed.insert(0, p)
            if p not in sys.path:
                sys.path.insert(0, p)

    # -- ctl channel --
    def recv_ctl(self) -> bool:
        """Handle one ctl message. False when the node is gone."""
        fds = array.array("i")
        try:
            # never blocks: a ctl event the loop saw may have been read meanwhile (take_shm_fd)
            msg, anc, _, _ = self.ctl.recvmsg(1 << 16, socket.CMSG_SPACE(16 * fds.itemsize),
                                              socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            return False
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
        if not msg:
            return False
        op = msg[4] if len(msg) >= P.HDR_LEN else -1
        if op == P.CTL_NEW_PORT and len(fds) in (1, 2):
            self.new_fds.append((P.HEADER.unpack_from(msg)[3], fds[0], fds[-1]))
        elif op == P.CTL_SHM and len(fds) == 1:
            serial = P.HEADER.unpack_from(msg)[3]
            old = self.shm_fds.pop(serial, None)
            if old is not None:
                os.close(old)
            self.shm_fds[serial] = fds[0]
        else:
            for fd in fds:   # descriptors we did not ask for
                os.close(fd)
            if op == P.CTL_PID_INFO and len(msg) > P.HDR_LEN + 8:
                raw = P.U64.unpack_from(msg, P.HDR_LEN)[0]
                self.pids[raw] = decode(msg[P.HDR_LEN + 8:])
            elif op == P.CTL_CLASS_INFO:
                self.class_info(P.HEADER.unpack_from(msg)[3],
                                msg[P.HDR_LEN:].decode(errors="replace"))
        return True

    def handshake(self) -> None:
        msg = self.ctl.recv(1 << 16)
        if len(msg) < P.HDR_LEN + 2 or msg[4] != P.CTL_HELLO:
            raise SystemExit("pybridge worker: the node did not say CTL_HELLO")
        proto = int.from_bytes(msg[P.HDR_LEN:P.HDR_LEN + 2], "big")
        theirs = msg[P.HDR_LEN + 2:].decode(errors="replace")
        if proto != P.PROTOCOL_VERSION:
            upgrade = "the pybridge Erlang app / C driver" if proto < P.PROTOCOL_VERSION \
                else "the pybridge Python package"
            log.critical("protocol mismatch: C driver %s speaks %d, Python package %s speaks %d; "
                         "upgrade %s", theirs, proto, __version__, P.PROTOCOL_VERSION, upgrade)
            raise SystemExit(3)
        self.ctl.sendall(P.frame(P.CTL_HELLO,
                                 P.PROTOCOL_VERSION.to_bytes(2, "big") + __version__.encode()))

    def class_info(self, rid: int, spec: str) -> None:
        """CTL_CLASS_INFO: the driver flags of a class, for pybridge:load_driver."""
        try:
            cls = self.find_class(spec)
            body = b"\x00" + P.U32.pack(int(getattr(cls, "flags", 0)) & 0xFFFFFFFF)
        except Exception as e:
            body = b"\x01" + f"{type(e).__name__}: {e}".encode()[:4000]
        self.ctl.sendall(P.frame(P.CTL_CLASS_INFO, body, rid=rid))

    def resolve_pid(self, conn: Conn, raw: int) -> Any:
        pid = self.pids.get(raw)
        if pid is not None:
            return pid
        deadline = time.monotonic() + conn.timeout_ms / 1000
        if not conn.closed:
            conn.send(P.DRV_RESOLVE_PID, P.U64.pack(raw))
            conn.flush_blocking(deadline)
        while raw not in self.pids:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.ctl], [], [], left)[0]:
                raise WorkerError("the node did not resolve a pid in time")
            if not self.recv_ctl():
                raise WorkerError("the node is gone")
        if len(self.pids) > 100_000:
            self.pids.clear()
            return self.resolve_pid(conn, raw)
        return self.pids[raw]

    # -- ports --
    def load(self, conn: Conn, text: str) -> tuple[type, str]:
        words = text.split(" ")
        i = 0
        while i < len(words) and words[i].startswith("-"):
            opt, arg = words[i], words[i + 1] if i + 1 < len(words) else ""
            if opt == "-t" and arg.isdigit():
                conn.timeout_ms = int(arg)
            elif opt == "-o":
                self.pids[conn.caller_raw] = decode(bytes.fromhex(arg))
            elif opt == "-p":
                self.allow([urllib.parse.unquote(x) for x in arg.split(":") if x])
            i += 2
        spec = words[i] if i < len(words) else ""
        conn.spec = spec
        return self.find_class(spec), " ".join(words[i + 1:])

    def find_class(self, spec: str) -> type:
        cls = self.classes.get(spec)
        if cls is not None:                 # checked already: opens are a hot path too
            return cls
        if not SPEC_RE.match(spec):
            raise BadArg(f"bad driver spec {spec!r}: expected module:Class")
        modname, clsname = spec.split(":")
        # Why look before importing: an import runs the module, so a spec from Erlang must
        # not reach modules outside the configured python_path (the standard library, ...).
        top = modname.split(".")[0]
        if importlib.machinery.PathFinder.find_spec(top, self.allowed) is None:
            raise ModuleNotFoundError(f"No module named {top!r} in the configured python_path")
        mod = importlib.import_module(modname)
        where = os.path.realpath(getattr(mod, "__file__", None) or "")
        if not any(where.startswith(d + os.sep) for d in self.allowed):
            raise ModuleNotFoundError(
                f"{modname!r} is not imported from the configured python_path")
        cls = getattr(mod, clsname, None)
        if not (isinstance(cls, type) and issubclass(cls, Driver)):
            raise TypeError(f"{spec} is not a subclass of pybridge.Driver")
        self.classes[spec] = cls
        return cls

    def take_shm_fd(self, serial: int) -> int:
        """The region CTL_SHM brought for this port: the driver sent it before PY_SHM_ATTACH,
        so it is in the ctl socket already if not read yet."""
        deadline = time.monotonic() + 5
        while serial not in self.shm_fds:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.ctl], [], [], left)[0]:
                raise P.ProtocolError("PY_SHM_ATTACH without its CTL_SHM")
            if not self.recv_ctl():
                raise WorkerError("the node is gone")
        return self.shm_fds.pop(serial)

    def accept_ports(self) -> None:
        while self.new_fds:
            self.accept(*self.new_fds.popleft())

    def accept(self, serial: int, rfd: int, wfd: int) -> Conn:
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)     # the same descriptor for a socket: no matter
        conn = Conn(self, rfd, wfd)
        conn.serial = serial
        self.conns.add(conn)
        conn.rearm()
        return conn

    def adopt(self, serial: int, deadline: float) -> Conn:
        """The port driver_create_port just made: its channel comes in CTL_NEW_PORT `serial`,
        with its PY_OPEN already in it; set it up now, so create_port can return it."""
        while True:
            for item in self.new_fds:
                if item[0] == serial:
                    self.new_fds.remove(item)
                    conn = self.accept(*item)
                    while conn.driver is None and not conn.closed:
                        left = deadline - time.monotonic()
                        if left <= 0 or not select.select([conn.rfd], [], [], left)[0]:
                            raise WorkerError("the new port's channel stayed silent")
                        conn.on_readable()
                    return conn
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.ctl], [], [], left)[0]:
                raise WorkerError("the new port's channel did not arrive in time")
            if not self.recv_ctl():
                raise WorkerError("the node is gone")

    def run(self) -> None:
        self.handshake()
        self.sel.register(self.ctl, selectors.EVENT_READ, None)
        self.sel.register(self.jobs.rfd, selectors.EVENT_READ, self.jobs)
        while True:
            if self.aio is not None:
                self.aio.run()
            while self.dirty:
                self.dirty.pop().flush()
            self.accept_ports()
            while self.later:
                conn, name, arg = self.later.pop(0)
                conn.call_back(name, arg)
                conn.flush()
            for what, ev in self.wait():
                if what is None:
                    if not self.recv_ctl():
                        return self.shutdown()
                elif what is self.jobs:
                    for conn, fut in self.jobs.finished():
                        conn.on_job_done(fut)
                        conn.flush()
                elif isinstance(what, Watch):
                    if not what.conn.closed:
                        what.fire(ev)
                elif not what.closed:
                    if ev & selectors.EVENT_WRITE:
                        what.flush()
                    if ev & selectors.EVENT_READ and not what.closed:
                        what.on_readable()

    def wait(self) -> list[tuple[Any, int]]:
        """What is ready: polled for up to spin seconds before sleeping, since a port that
        was just served is likely to send again at once (a control's caller, a pipeline);
        a sleeping worker's wake-up costs as much as the whole round trip."""
        timeout = None if self.aio is None else self.aio.timeout()
        if self.spin and timeout != 0:
            clock, poll = time.perf_counter, self.sel.ep.poll
            end = clock() + (self.spin if timeout is None else min(self.spin, timeout))
            while True:
                events = poll(0)
                if events:
                    return self.sel.ready(events)
                if clock() >= end:
                    break
            if timeout is not None:
                timeout = max(0.0, timeout - self.spin)
        return self.sel.select(timeout)

    def shutdown(self) -> None:
        for conn in list(self.conns):
            conn.close()
        if self.aio is not None:
            self.aio.shutdown()
        self.jobs.close()


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: the worker must not outlive the node, even if ctl EOF is missed."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _keep_large_blocks() -> None:
    """Bodies up to the ring's size come from malloc's heap and go back to it: glibc would
    mmap each one over 128 KiB and unmap it on free, so every large message paid its page
    faults again (a fresh 1 MiB costs more than copying it)."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 16 << 20)           # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 << 20)           # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def capture_output(ctl: socket.socket) -> None:
    """Whatever user code writes on fd 1 or 2 (print, C extensions) goes to Erlang's
    logger, a line at a time: stdout at notice, stderr at warning."""
    for fd, level in ((1, "notice"), (2, "warning")):
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        os.set_inheritable(fd, True)
        threading.Thread(target=_forward_lines,
                         args=(r, ctl, level, "stdout" if fd == 1 else "stderr"),
                         name=f"pybridge-{fd}", daemon=True).start()
    # typeshed types them as TextIO; at start-up they are the interpreter's TextIOWrappers
    cast(io.TextIOWrapper, sys.stdout).reconfigure(line_buffering=True)
    cast(io.TextIOWrapper, sys.stderr).reconfigure(line_buffering=True)


def _forward_lines(r: int, ctl: socket.socket, level: str, stream: str) -> None:
    meta = {Atom("stream"): Atom(stream), Atom("os_pid"): os.getpid()}
    pending = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            return
        *lines, pending = (pending + chunk).split(b"\n")
        if len(pending) > 60000:                   # a line without end: send it anyway
            lines, pending = lines + [pending], b""
        for line in lines:
            try:
                ctl.sendall(P.frame(P.CTL_LOG, encode((Atom(level), line[:60000], meta))))
            except OSError:
                return


def main(fd: int, paths: list[str], async_threads: int = 4, max_frame: int = P.MAX_FRAME,
         spin_us: int = 50) -> None:
    _die_with_parent()
    _keep_large_blocks()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    worker = Worker(fd, paths, async_threads, max_frame, spin_us)
    capture_output(worker.ctl)
    handler = CtlLogHandler(worker.ctl)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    worker.run()
