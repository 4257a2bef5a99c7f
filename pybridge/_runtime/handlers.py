"""What each frame from the C driver does to its port: opening it, calling the driver's
callbacks, and the replies the driver waits for (docs/PROTOCOL.md, "Frames to Python").

HANDLERS maps every PY_* opcode to its handler; Conn.dispatch looks them up. A request
(an open, a control, a call, a strict-mode output or timeout) is answered once its callback
has ended, its coroutine included: with DRV_REPLY, or DRV_ERROR and the exception.
"""
from __future__ import annotations

import functools
import inspect
import math
import time
from collections.abc import Callable
from types import CoroutineType
from typing import Any

from .._api.driver import PORT_CONTROL_FLAG_BINARY, Driver
from .._decode import decode
from .._encode import encode
from .._errors import BadArg, error_term
from .._types import Atom, ImproperList, Pid
from .._wire import protocol as P
from .conn import Conn, Handler
from .runner import LATE

# a list-mode control reply longer than STRING_EXT holds travels as {string, Binary}
STRING_EXT_MAX = 65535
STRING = Atom("string")


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


def fail(conn: Conn, rid: int, exc: BaseException, what: str) -> None:
    """Answer a request with the exception, and log it with its traceback."""
    if isinstance(exc, BadArg):
        conn.send(P.DRV_ERROR, encode(Atom("badarg")), rid=rid)
        return
    conn.log_exception(exc, what)
    try:
        body = encode(error_term(exc))
    except Exception:   # a message that cannot be encoded must not lose the answer
        body = encode((Atom("python"), Atom("builtins.Exception"), b"unencodable error", b""))
    conn.send(P.DRV_ERROR, body, rid=rid)


def reply(conn: Conn, rid: int) -> None:
    """The empty answer of strict mode, once the callback has ended (its coroutine too)."""
    if conn.hold is None:
        conn.send(P.DRV_REPLY, rid=rid)
    else:
        conn.hold.later(conn.send, P.DRV_REPLY, b"", 0, rid)


# -- PY_OPEN --
def on_open(conn: Conn, fl: int, rid: int, body: bytes) -> None:
    conn.host.port_opened(conn.serial)
    conn.port_raw, conn.caller_raw, conn.connected_raw = (
        P.U64.unpack_from(body, 0)[0], P.U64.unpack_from(body, 8)[0],
        P.U64.unpack_from(body, 16)[0])
    text = body[24:].decode("utf-8", "replace")
    try:
        cls, command = conn.host.load(conn, text)
        conn.lock_mode(cls)
    except BaseException as e:  # noqa: BLE001 - every failure of start is open_port's badarg
        open_failed(conn, rid, e)
        return
    if conn.runner is not None and not fl & P.FL_CREATED:
        conn.runner.submit(start, conn, cls, command, fl, rid)   # on the port's thread
    else:
        start(conn, cls, command, fl, rid)


def start(conn: Conn, cls: type[Driver], command: str, fl: int, rid: int) -> None:
    try:
        drv = cls()
        bind(conn, drv)
        if fl & P.FL_CREATED:       # driver_create_port: no start, nobody waits
            return
        r = drv.start(command)
    except BaseException as e:  # noqa: BLE001 - every failure of start is open_port's badarg
        open_failed(conn, rid, e)
        return
    if r.__class__ is CoroutineType:
        conn.run_coroutine(r, "start", lambda _: opened(conn, rid), rid)
    else:
        opened(conn, rid)


def bind(conn: Conn, drv: Driver) -> None:
    """drv serves the port from now on: made for its open, or by a reload's code_change."""
    drv.port = conn.port
    conn.none_atom = getattr(drv, "none_atom", "undefined")
    conn.instance = drv
    # looked up once: output is the hot path
    conn.outputv_fn = getattr(drv, "outputv", None)
    conn.output_fn = getattr(drv, "output", None)
    conn.zero_copy = bool(getattr(drv, "zero_copy", False))
    conn.output_async = inspect.iscoroutinefunction(conn.outputv_fn or conn.output_fn)
    conn.channel.reader.views = conn.zero_copy


def opened(conn: Conn, rid: int) -> None:
    flags = (P.OPEN_BLOCKING if getattr(conn.instance, "blocking", False) else 0) | \
            (P.OPEN_PORT_LOCKING if conn.runner is not None else 0)
    limit = 0 if conn.limit == math.inf else max(1, round(conn.limit * 1000))
    conn.send(P.DRV_REPLY, P.U32.pack(flags) + P.U32.pack(min(limit, 0xFFFFFFFF)), rid=rid)


def open_failed(conn: Conn, rid: int, e: BaseException) -> None:
    conn.instance = None
    fail(conn, rid, e, "start")
    conn.flush()
    conn.close(call_stop=False)


# -- PY_CONTROL, PY_CALL --
Reply = Callable[[Conn, int, int, Any], object]     # (conn, rid, wrapped, result)


def answer(conn: Conn, rid: int, what: str, args: tuple[Any, ...], reply: Reply,
           wrapped: int) -> None:
    """Run control or call, bounded by the watchdog; its result (or its coroutine's) goes to
    reply(conn, rid, wrapped, result). A missing callback is badarg, as a NULL entry of a
    C driver."""
    fn = getattr(conn.instance, what, None)
    if fn is None:
        raise BadArg(f"the driver has no {what} callback")
    # the watchdog's view of this request, written here rather than in helpers: every
    # control and call passes, and each Python call is a measurable part of a round trip
    busy, ms = conn.busy, conn.timeout_ms
    busy.deadline = time.monotonic() + ms / 1000 + LATE if ms else 0.0
    try:
        r = fn(*args)
    finally:
        # under the lock: the watchdog must not interrupt what follows the callback
        busy.lock.acquire()
        busy.deadline = 0.0
        busy.lock.release()
    if r.__class__ is CoroutineType:
        conn.run_coroutine(r, what, functools.partial(reply, conn, rid, wrapped), rid)
    else:
        reply(conn, rid, wrapped, r)


def on_control(conn: Conn, fl: int, rid: int, body: bytes) -> None:
    wrapped = fl & P.FL_WRAPPED
    try:
        if wrapped:
            cmd, data, me = unwrap_request(decode(body[4:], conn.none_atom))
            conn.host.node.learn(conn.caller_raw, me)
            data = flatten_iodata(data)
        else:
            cmd, data = P.U32.unpack_from(body)[0], body[4:]
        answer(conn, rid, "control", (cmd, data), control_reply, wrapped)
    except BaseException as e:  # noqa: BLE001 - SystemExit too: the callback's, answered
        fail(conn, rid, e, "control")


def control_reply(conn: Conn, rid: int, wrapped: int, r: Any) -> None:
    if wrapped:
        b = b"" if r is None else reply_bytes(r)
        if conn.control_flags & PORT_CONTROL_FLAG_BINARY and r is not None:
            conn.send(P.DRV_REPLY, encode(b), rid=rid)
        elif len(b) <= STRING_EXT_MAX:
            conn.send(P.DRV_REPLY, encode(list(b)), rid=rid)
        else:
            # Why not a list: its ETF is 2N bytes that port_call decodes into the caller's
            # heap in one go, holding a scheduler; {string, Binary} costs N, and
            # pybridge:control/3 makes the list with binary_to_list/1, which yields.
            conn.send(P.DRV_REPLY, encode((STRING, b)), rid=rid)
    elif r is None:
        conn.send(P.DRV_REPLY, fl=P.FL_NONE, rid=rid)
    else:
        conn.send(P.DRV_REPLY, reply_bytes(r), rid=rid)


def on_call(conn: Conn, fl: int, rid: int, body: bytes) -> None:
    try:
        term = decode(body[4:], conn.none_atom)
        if fl & P.FL_WRAPPED:
            cmd, term, me = unwrap_request(term)
            conn.host.node.learn(conn.caller_raw, me)
        else:
            cmd = P.U32.unpack_from(body)[0]
        answer(conn, rid, "call", (cmd, term), call_reply, 0)
    except BaseException as e:  # noqa: BLE001 - SystemExit too: the callback's, answered
        fail(conn, rid, e, "call")


def call_reply(conn: Conn, rid: int, wrapped: int, r: Any) -> None:
    # wrapped or not, a call's answer is the term: the C side wraps it; written as
    # term_to_binary would, big maps with atom keys included (learn_atoms)
    conn.send(P.DRV_REPLY, encode(r, conn.none_atom, conn.learn_atoms), rid=rid)


# -- the other callbacks, and what the C side tells --
def on_output(conn: Conn, fl: int, rid: int, body: bytes) -> None:
    conn.on_output(body)
    if rid:                       # strict mode: the driver waits for this
        reply(conn, rid)


def on_timeout(conn: Conn, fl: int, rid: int, body: bytes) -> None:
    # a timeout of a timer that was cancelled or replaced meanwhile never reaches the driver
    if P.U32.unpack(body)[0] == conn.active_gen:
        conn.active_gen = 0
        conn.call_back("timeout")
    if rid:
        reply(conn, rid)


def on_process_exit(conn: Conn, fl: int, rid: int, body: bytes) -> None:
    mon = conn.monitors.pop(body, None)
    if mon is not None:
        conn.call_back("process_exit", mon)


def on_caller(conn: Conn, fl: int, rid: int, body: bytes) -> None:
    conn.caller_raw = P.U64.unpack(body)[0]


def on_connected(conn: Conn, fl: int, rid: int, body: bytes) -> None:
    conn.connected_raw = P.U64.unpack(body)[0]


def on_flush(conn: Conn, fl: int, rid: int, body: bytes) -> None:
    conn.call_back("flush")


def on_stop(conn: Conn, fl: int, rid: int, body: bytes) -> None:
    conn.close()


def on_shm_attach(conn: Conn, fl: int, rid: int, body: bytes) -> None:
    conn.attach_shm(P.U64.unpack(body)[0])


def on_shm_release(conn: Conn, fl: int, rid: int, body: bytes) -> None:
    conn.channel.rings.release(P.U64.unpack(body)[0])


HANDLERS: dict[int, Handler] = {
    P.PY_OUTPUT: on_output,
    P.PY_CONTROL: on_control,
    P.PY_CALL: on_call,
    P.PY_CALLER: on_caller,
    P.PY_CONNECTED: on_connected,
    P.PY_TIMEOUT: on_timeout,
    P.PY_FLUSH: on_flush,
    P.PY_PROCESS_EXIT: on_process_exit,
    P.PY_OPEN: on_open,
    P.PY_STOP: on_stop,
    P.PY_SHM_ATTACH: on_shm_attach,
    P.PY_SHM_RELEASE: on_shm_release,
}
