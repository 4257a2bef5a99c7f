"""The public driver API: the Driver base class, the port handle (``self.port``) and Monitor.

Callbacks keep driver_entry names; port handle methods keep erl_driver names without
the ``driver_`` / ``erl_drv_`` prefix. Port is written against PortBackend, the runtime's
interface below it: each method checks its arguments, makes exactly one backend call and
decodes its answer, so the runtime may route a call from another thread as a whole.
"""
from __future__ import annotations

import errno
import struct
from collections.abc import Awaitable, Sequence
from concurrent.futures import Future
from typing import Any, Literal, Protocol, get_args

from .._types import Atom, LocalPid, Pid, PortHandle
from .._wire import protocol as P
from ..spec import evaluate

PORT_CONTROL_FLAG_BINARY = 1
PORT_CONTROL_FLAG_HEAVY = 2

# driver flags a class may carry (named drivers, pybridge:load_driver)
ERL_DRV_FLAG_USE_PORT_LOCKING = 1   # port-level locking: each port's callbacks on its own thread
ERL_DRV_FLAG_SOFT_BUSY = 2
ERL_DRV_FLAG_NO_BUSY_MSGQ = 4

# driver_select modes (ERL_DRV_READ, ERL_DRV_WRITE, ERL_DRV_USE)
SELECT_READ = 1
SELECT_WRITE = 2
SELECT_USE = 4


_TWO_U32 = struct.Struct(">II").pack

#: The callbacks of a Driver, by their driver_entry names: the one list of them. Every one
#: but start is optional: a class that leaves one out behaves like a C driver_entry with a
#: NULL field (no control or call: badarg; no output or outputv: the data is dropped).
CallbackName = Literal["start", "stop", "output", "outputv", "control", "call", "timeout",
                       "flush", "process_exit", "ready_async", "ready_input", "ready_output",
                       "stop_select", "code_change"]
CALLBACKS: tuple[CallbackName, ...] = get_args(CallbackName)

#: The callbacks whose absence ERTS can tell, as the bits of CTL_CLASS_INFO's callbacks
#: (docs/PROTOCOL.md): a named driver's entry has NULL where the class has none.
_CB_BITS = {"output": P.CB_OUTPUT, "outputv": P.CB_OUTPUTV, "control": P.CB_CONTROL,
            "call": P.CB_CALL, "flush": P.CB_FLUSH, "process_exit": P.CB_PROCESS_EXIT}


def class_callbacks(cls: type) -> int:
    """The CB_* bits of the callbacks a Driver class defines."""
    return sum(bit for name, bit in _CB_BITS.items() if callable(getattr(cls, name, None)))

TIME_UNITS = {"second": 0, "millisecond": 1, "microsecond": 2, "nanosecond": 3}


class Monitor:
    """A driver monitor (ErlDrvMonitor): from monitor_process, given to process_exit."""

    __slots__ = ("data", "pid")

    def __init__(self, data: bytes, pid: Pid | None) -> None:
        self.data = data
        self.pid = pid

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Monitor) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return f"<pybridge.Monitor {self.data.hex()[:16]}>"


class PortBackend(Protocol):
    """What a Port needs of the runtime below it: one method per thing a port handle does.

    The runtime's connection implements it; calls from threads other than the worker's
    loop thread (async_ jobs, coroutines' executors) are routed in one place there."""

    def send(self, op: int, body: bytes = b"", fl: int = 0, rid: int = 0) -> None:
        """One frame to the C driver (docs/PROTOCOL.md); nothing once the port is closed."""

    def send_parts(self, op: int, parts: list[bytes]) -> None:
        """send() of a body given in parts, joined only if it goes inline."""

    def ask(self, op: int, body: bytes = b"") -> tuple[int, bytes]:
        """A driver call that needs the emulator's answer: its (status, data)."""

    def output_term(self, term: Any) -> None:
        """erl_drv_output_term of a term (a term program, see _wire.termprog)."""

    def send_term(self, pid: Pid, term: Any) -> None:
        """erl_drv_send_term of a term to pid."""

    def set_control_flags(self, flags: int) -> None:
        """set_port_control_flags."""

    def set_timer(self, ms: int) -> None:
        """driver_set_timer; replaces the timer that runs."""

    def cancel_timer(self) -> None:
        """driver_cancel_timer."""

    def read_timer(self) -> int:
        """ms left before the timer's timeout (0: none)."""

    def enq(self, pieces: list[bytes], front: bool) -> None:
        """The pieces at the back of the port's queue, or at its front (in order)."""

    def deq(self, n: int) -> int:
        """n bytes off the front of the queue; the bytes left."""

    def peekq(self) -> list[bytes]:
        """The queued pieces, front first."""

    def sizeq(self) -> int:
        """Bytes queued."""

    def monitor(self, pid: LocalPid) -> Monitor | None:
        """driver_monitor_process of a pid this port named; None if it is gone."""

    def demonitor(self, monitor: Monitor) -> None:
        """driver_demonitor_process."""

    def monitored(self, monitor: Monitor) -> Pid | None:
        """The monitor's pid while it is active."""

    def create_port(self, owner: LocalPid) -> Port:
        """driver_create_port: the new port's handle."""

    def async_(self, fn: Any, args: tuple[Any, ...], key: Any) -> Future[Any]:
        """driver_async: fn(*args) on the worker's pool, ready_async(result) after."""

    def select(self, fileobj: Any, mode: int, on: bool) -> None:
        """driver_select on a file object of the worker."""

    def caller(self) -> Pid:
        """driver_caller."""

    def connected(self) -> Pid:
        """driver_connected."""

    def driver(self) -> Driver | None:
        """The Driver instance serving the port (None once it is closed)."""

    def timeout(self) -> int:
        """ms Erlang waits for control / call / start."""

    def raw(self) -> int:
        """The port's raw ErlDrvPort value (for repr)."""

    def call_erlang(self, module: Atom, function: Atom, args: list[Any], timeout: float) -> Any:
        """apply(module, function, args) in a fresh Erlang process; waits for its result."""

    def call_erlang_async(self, module: Atom, function: Atom, args: list[Any],
                          timeout: float) -> Awaitable[Any]:
        """The same, for a coroutine to await."""


def _flat(data: Any) -> Any:
    """bytes as they are; another buffer as a flat byte view of it (no copy), or, when it is
    not contiguous, its bytes. The writer copies what it keeps past the call."""
    if data.__class__ is bytes:
        return data
    try:
        view = memoryview(data)
    except TypeError:               # what bytes() takes besides buffers (a list of ints)
        return bytes(data)
    return view.cast("B") if view.c_contiguous else view.tobytes()


class Port(PortHandle):
    """The port an instance serves: what a C driver reaches through its ErlDrvPort."""

    __slots__ = ("_b",)

    def __init__(self, backend: PortBackend) -> None:
        self._b = backend

    def output(self, data: Any) -> None:
        """driver_output: ``{Port, {data, Data}}`` to the connected process. Data is any
        buffer-protocol object (bytes, bytearray, memoryview, array.array, a NumPy array);
        a large C-contiguous one is copied straight into the port's shared memory, with no
        intermediate bytes. It is not kept: change it as soon as output returns."""
        self._b.send(P.DRV_OUTPUT, _flat(data))

    def set_port_control_flags(self, flags: int) -> None:
        """set_port_control_flags: PORT_CONTROL_FLAG_BINARY makes control replies binaries."""
        self._b.set_control_flags(flags)

    # -- output (driver_output2 / _binary / _v, erl_drv_output_term, erl_drv_send_term) --
    def output2(self, hdr: bytes, data: Any) -> None:
        """driver_output2: the header bytes arrive as list elements before the data."""
        hdr = bytes(hdr)
        self._b.send_parts(P.DRV_OUTPUT2, [P.U32.pack(len(hdr)) + hdr, _flat(data)])

    def output_binary(self, hdr: bytes, data: Any, offset: int = 0,
                      length: int | None = None) -> None:
        """driver_output_binary: data[offset:offset+length] (bytes of any buffer, as for
        output) arrives as a binary after the header."""
        data = _flat(data)
        if offset < 0 or offset > len(data) or (
                length is not None and (length < 0 or offset + length > len(data))):
            raise ValueError("offset/length outside the data")
        end = len(data) if length is None else offset + length
        hdr = bytes(hdr)
        self._b.send_parts(P.DRV_OUTPUT_BINARY, [P.U32.pack(len(hdr)) + hdr, data[offset:end]])

    def outputv(self, hdr: bytes, iov: Sequence[Any], skip: int = 0) -> None:
        """driver_outputv: the header as list elements, then one binary per piece, skipping
        the first ``skip`` bytes of the pieces."""
        if not hdr and not skip and len(iov) == 1:
            # the echo shape (one piece, no header): one pack, one concatenation
            piece = iov[0]
            if piece.__class__ is not bytes:
                piece = _flat(piece)
            if len(piece) < P.SHM_MIN:
                self._b.send(P.DRV_OUTPUTV, _TWO_U32(0, len(piece)) + piece)
            else:
                self._b.send_parts(P.DRV_OUTPUTV, [_TWO_U32(0, len(piece)), piece])
            return
        parts, pack = [P.U32.pack(len(hdr)), bytes(hdr)], P.U32.pack
        for piece in map(_flat, iov):
            if skip:
                if skip >= len(piece):
                    skip -= len(piece)
                    continue
                piece, skip = piece[skip:], 0
            parts.append(pack(len(piece)))
            parts.append(piece)
        self._b.send_parts(P.DRV_OUTPUTV, parts)

    def output_term(self, term: Any) -> None:
        """erl_drv_output_term: the connected process receives the term itself."""
        self._b.output_term(term)

    def send_term(self, pid: Pid, term: Any) -> None:
        """erl_drv_send_term: the process ``pid`` receives the term itself."""
        if not isinstance(pid, Pid):
            raise TypeError(f"send_term needs a pid, not {type(pid).__name__}")
        self._b.send_term(pid, term)

    def output_term_spec(self, spec: list[Any]) -> None:
        """erl_drv_output_term with a driver term format spec (see pybridge.spec)."""
        self.output_term(evaluate(spec, self))

    def send_term_spec(self, pid: Pid, spec: list[Any]) -> None:
        """erl_drv_send_term with a driver term format spec (see pybridge.spec)."""
        self.send_term(pid, evaluate(spec, self))

    # -- timer (driver_set_timer, driver_cancel_timer, driver_read_timer) --
    def set_timer(self, ms: int) -> None:
        """driver_set_timer: ``timeout()`` is called after ms; a new timer replaces the old."""
        if not 0 <= ms <= 0xFFFFFFFF:
            raise ValueError("ms must be an integer from 0 to 2**32-1")
        self._b.set_timer(int(ms))

    def cancel_timer(self) -> None:
        """driver_cancel_timer: once this returns, the cancelled timer never calls timeout."""
        self._b.cancel_timer()

    def read_timer(self) -> int:
        """driver_read_timer: ms left before the timeout (0 when no timer is set)."""
        return self._b.read_timer()

    # -- failure (driver_failure, _atom, _posix, _eof) --
    def failure(self, code: int) -> None:
        """driver_failure: the port exits with reason ``code``."""
        self._b.send(P.DRV_FAILURE, bytes((P.FAIL_CODE,)) + P.U32.pack(code & 0xFFFFFFFF))

    def failure_atom(self, name: str) -> None:
        """driver_failure_atom: the port exits with the atom ``name``."""
        b = name.encode("latin-1")
        if not 0 < len(b) < 256 or b"\0" in b:
            raise ValueError("an atom name of 1 to 255 latin-1 characters")
        self._b.send(P.DRV_FAILURE, bytes((P.FAIL_ATOM,)) + b)

    def failure_posix(self, errno: int) -> None:
        """driver_failure_posix: the port exits with the errno's atom (eagain, ...)."""
        self._b.send(P.DRV_FAILURE, bytes((P.FAIL_POSIX,)) + P.U32.pack(errno & 0xFFFFFFFF))

    def failure_eof(self) -> None:
        """driver_failure_eof: {Port, eof} when opened with eof, otherwise the port closes."""
        self._b.send(P.DRV_FAILURE, bytes((P.FAIL_EOF,)))

    # -- busy port --
    def set_busy_port(self, on: bool) -> None:
        """set_busy_port: while on, senders of port_command are suspended."""
        self._b.send(P.DRV_SET_BUSY, b"\x01" if on else b"\x00")

    def busy_msgq_limits(self, low: int = 0, high: int = 0) -> tuple[int, int]:
        """erl_drv_busy_msgq_limits: the port message queue sizes that make senders wait
        (high) and release them (low); 0 leaves a limit as it is, -1 disables. Returns the
        limits in force."""
        enc = [(1 << 64) - 1 if v == -1 else v for v in (low, high)]
        _, d = self._b.ask(P.DRV_BUSY_MSGQ_LIMITS, P.U64.pack(enc[0]) + P.U64.pack(enc[1]))
        lo, hi = P.U64.unpack_from(d, 0)[0], P.U64.unpack_from(d, 8)[0]
        lo, hi = (-1 if v == (1 << 64) - 1 else v for v in (lo, hi))
        return lo, hi

    # -- the port's ERTS driver queue (driver_enq, driver_deq, ...) --
    def enq(self, data: bytes) -> None:
        """driver_enq: append to the port's queue."""
        self._b.enq([bytes(data)], front=False)

    def enqv(self, iov: list[bytes]) -> None:
        """driver_enqv: append each piece."""
        self._b.enq([bytes(piece) for piece in iov], front=False)

    def pushq(self, data: bytes) -> None:
        """driver_pushq: put in front of the port's queue."""
        self._b.enq([bytes(data)], front=True)

    def pushqv(self, iov: list[bytes]) -> None:
        """driver_pushqv: put the pieces, in order, in front of the queue."""
        self._b.enq([bytes(piece) for piece in iov], front=True)

    def deq(self, n: int) -> int:
        """driver_deq: drop n bytes from the front; returns the bytes left."""
        return self._b.deq(n)

    def peekq(self) -> list[bytes]:
        """driver_peekq / driver_peekqv: the queued pieces, front first."""
        return self._b.peekq()

    def sizeq(self) -> int:
        """driver_sizeq: bytes queued."""
        return self._b.sizeq()

    # -- monitors (driver_monitor_process, ...; the process_exit callback) --
    def monitor_process(self, pid: Pid) -> Monitor | None:
        """driver_monitor_process: a real ERTS monitor of a pid this port has seen
        (caller(), connected()); None if the process is gone (noproc)."""
        if not (isinstance(pid, LocalPid) and pid.origin is self):
            raise ValueError("monitor_process takes a pid this port named: caller() or connected()")
        return self._b.monitor(pid)

    def demonitor_process(self, monitor: Monitor) -> None:
        """driver_demonitor_process: process_exit will not be called for it."""
        self._b.demonitor(monitor)

    def get_monitored_process(self, monitor: Monitor) -> Pid | None:
        """driver_get_monitored_process: the pid, or None once the monitor is gone."""
        return self._b.monitored(monitor)

    @staticmethod
    def compare_monitors(a: Monitor, b: Monitor) -> int:
        """driver_compare_monitors: 0 when equal, otherwise -1 or 1 (a total order)."""
        return (a.data > b.data) - (a.data < b.data)

    # -- the emulator's view (driver_system_info, erl_drv_monotonic_time, erl_drv_getenv ...) --
    def system_info(self) -> dict[str, int | str]:
        """driver_system_info of the emulator (not of the worker)."""
        _, d = self._b.ask(P.DRV_SYSTEM_INFO)
        v = [int.from_bytes(d[i:i + 4], "big", signed=True) for i in range(0, 36, 4)]
        n1 = d[36]
        erts, n2 = d[37:37 + n1].decode(), d[37 + n1]
        otp = d[38 + n1:38 + n1 + n2].decode()
        keys = ["driver_major_version", "driver_minor_version", "thread_support", "smp_support",
                "async_threads", "scheduler_threads", "nif_major_version", "nif_minor_version",
                "dirty_scheduler_support"]
        return dict(zip(keys, v, strict=True), erts_version=erts, otp_release=otp)

    def _time(self, which: int, unit: str) -> int:
        if unit not in TIME_UNITS:
            raise ValueError(f"unit must be one of {', '.join(TIME_UNITS)}")
        _, d = self._b.ask(P.DRV_TIME, bytes((which, TIME_UNITS[unit])))
        return int.from_bytes(d, "big", signed=True)

    def monotonic_time(self, unit: str = "millisecond") -> int:
        """erl_drv_monotonic_time: the emulator's Erlang monotonic time."""
        return self._time(P.TIME_MONOTONIC, unit)

    def time_offset(self, unit: str = "millisecond") -> int:
        """erl_drv_time_offset: Erlang system time = monotonic_time + time_offset."""
        return self._time(P.TIME_OFFSET, unit)

    @staticmethod
    def convert_time_unit(val: int, from_unit: str, to_unit: str) -> int:
        """erl_drv_convert_time_unit: rounds down, as the emulator does."""
        scale = {"second": 1, "millisecond": 10**3, "microsecond": 10**6, "nanosecond": 10**9}
        return val * scale[to_unit] // scale[from_unit]

    @staticmethod
    def errno_id(err: int) -> str:
        """erl_errno_id: the atom name of an errno ("eagain"), "unknown" if it has none."""
        return errno.errorcode.get(err, "unknown").lower()

    def getenv(self, key: str) -> str | None:
        """erl_drv_getenv: the emulator's environment (os:getenv/1), not the worker's."""
        status, d = self._b.ask(P.DRV_GETENV, key.encode())
        return None if status else d.decode(errors="surrogateescape")

    def putenv(self, key: str, value: str) -> None:
        """erl_drv_putenv: os:getenv/1 sees it."""
        if not key or "=" in key or "\0" in key + value:
            raise ValueError("bad environment variable")
        status, _ = self._b.ask(P.DRV_PUTENV, key.encode() + b"\0" + value.encode())
        if status:
            raise OSError(f"erl_drv_putenv({key!r}) failed")

    def set_os_pid(self, pid: int) -> None:
        """erl_drv_set_os_pid: what port_info(Port, os_pid) shows (the worker's by default)."""
        self._b.send(P.DRV_SET_OS_PID, P.U32.pack(pid & 0xFFFFFFFF))

    def create_port(self, owner: Pid) -> Port:
        """driver_create_port: a new port of this driver owned by ``owner`` (a pid this port
        named), served by a new instance of the same class whose start is not called.
        Returns the new port's handle; its instance is ``handle.driver``."""
        if not (isinstance(owner, LocalPid) and owner.origin is self):
            raise ValueError("create_port takes a pid this port named: caller() or connected()")
        return self._b.create_port(owner)

    @property
    def driver(self) -> Driver | None:
        """The Driver instance this port is served by."""
        return self._b.driver()

    # -- driver_async, driver_select --
    def async_(self, fn: Any, *args: Any, key: Any = None) -> Any:
        """driver_async: run fn(*args) on the worker's thread pool; ready_async(result) is then
        called on this port. Jobs with equal keys run on one thread, in order. Returns a
        concurrent.futures.Future. The job may use the port handle: from its thread, each
        method runs on the worker's thread and returns there."""
        return self._b.async_(fn, args, key)

    def select(self, fileobj: Any, mode: int, on: bool) -> None:
        """driver_select on a file object of the worker (socket, pipe, anything with
        fileno()): ready_input / ready_output are called when it is ready. Turning it off
        with SELECT_USE in mode calls stop_select(fileobj) afterwards (close it there)."""
        self._b.select(fileobj, mode, on)

    def caller(self) -> Pid:
        """driver_caller: the pid behind the callback running now."""
        return self._b.caller()

    def connected(self) -> Pid:
        """driver_connected: the port's connected process (its owner, or per port_connect)."""
        return self._b.connected()

    @property
    def timeout(self) -> int:
        """Milliseconds Erlang waits for control / call / start on this port."""
        return self._b.timeout()

    # -- calls to Erlang --
    def call_erlang(self, module: str | Atom, function: str | Atom, args: Sequence[Any],
                    timeout: float = 5.0) -> Any:
        """``apply(Module, Function, Args)`` in a fresh Erlang process on the port's node;
        returns its result as a Python term (args and result follow the term mapping;
        module and function are atoms, given as str or Atom). An Erlang exception raises
        pybridge.ErlangError; no answer within ``timeout`` seconds raises pybridge.Timeout,
        and the Erlang process is killed.

        Allowed in every callback and from any thread. Inside a blocking control or call
        its caller waits: a function that needs that caller, or this port, cannot finish
        before the timeout (a deadlock that ends there). In an ``async def`` callback,
        ``await call_erlang_async(...)`` lets other ports' coroutines run meanwhile."""
        return self._b.call_erlang(*_erl_call(module, function, args, timeout))

    def call_erlang_async(self, module: str | Atom, function: str | Atom, args: Sequence[Any],
                          timeout: float = 5.0) -> Awaitable[Any]:
        """call_erlang for coroutines: ``result = await port.call_erlang_async(...)``."""
        return self._b.call_erlang_async(*_erl_call(module, function, args, timeout))

    def __repr__(self) -> str:
        return f"<pybridge.Port {self._b.raw():#x}>"


def _erl_call(module: str | Atom, function: str | Atom, args: Sequence[Any],
              timeout: float) -> tuple[Atom, Atom, list[Any], float]:
    """call_erlang's arguments checked: module and function as atoms, args as a list."""
    if not isinstance(args, (list, tuple)):
        raise TypeError(f"call_erlang args must be a list, not {type(args).__name__}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
            or not 0 < timeout <= 0xFFFFFFFF / 1000:
        raise ValueError("call_erlang timeout must be seconds, over 0 and under 2**32 ms")
    names = []
    for what, name in (("module", module), ("function", function)):
        if isinstance(name, str):
            name = Atom(name)
        if not isinstance(name, Atom):
            raise TypeError(f"call_erlang {what} must be a str or an Atom, "
                            f"not {type(name).__name__}")
        names.append(name)
    return names[0], names[1], list(args), float(timeout)


class Driver:
    """Subclass this; one instance serves one port.

    Define only the callbacks you need. A callback you leave out behaves like a NULL
    field in a C driver_entry: no ``control`` or ``call`` means badarg in Erlang.
    ``output(data)`` is used when the class has no ``outputv(iov)``.
    """

    #: the atom Python's None maps to and from ("nil" suits Elixir)
    none_atom = "undefined"

    #: strict mode: output, outputv and timeout make the scheduler wait for them (bounded by
    #: the port's timeout), as a C driver's callbacks do. Off by default: nothing but
    #: control and call ever waits for Python.
    blocking = False

    #: output(data) and outputv(iov) get read-only memoryviews of the worker's read buffer
    #: or of the port's shared memory, no copy, valid during the callback only: released
    #: after it (any later use raises ValueError). Keep bytes(view). docs/API.md
    zero_copy = False

    #: driver flags, as a C driver_entry's: ERL_DRV_FLAG_USE_PORT_LOCKING gives each port
    #: its own thread (port-level locking: a port's callbacks run one at a time and in
    #: order, ports concurrently); without it the worker's callbacks run one at a time
    #: (driver-level locking). For a named driver (pybridge:load_driver),
    #: ERL_DRV_FLAG_SOFT_BUSY lets port_command(P, D, [force]) through a busy port and
    #: ERL_DRV_FLAG_NO_BUSY_MSGQ turns off the busy port message queue
    flags = 0

    #: ms a callback may run before it is hung (None: no limit; 0: the app env
    #: callback_limit, default 60000): port-level locking, the port exits
    #: {pybridge, hung}; driver-level, the worker is replaced ({pybridge, worker_hung})
    callback_limit: int | float | None = 0

    port: Port

    def start(self, command: str) -> Awaitable[None] | None:
        """Called before open_port returns; ``command`` is the text after the spec."""

    def stop(self) -> Awaitable[None] | None:
        """Called when the port closes."""
