"""Calls from Python to Erlang (``Port.call_erlang``): the worker's calls under way, their
CTL_ERL_CALL requests and CTL_ERL_RESULT answers, and the waiting for them.

docs/PROTOCOL.md, "Calls from Python to Erlang": a call goes over ctl to the worker's
pybridge_manager, which applies it in a fresh Erlang process and answers over ctl; the
port's channel is not involved (nothing in the port's traces, and a port busy in a control
does not hold the answer back). The loop thread alone reads ctl: a call made on it waits
by reading ctl itself (no callback runs meanwhile, as for a pid resolution); a call from
any other thread waits on a Future that the loop thread completes; a coroutine awaits it.
"""
from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from .._decode import decode
from .._encode import encode
from .._errors import ErlangError, ProtocolError, Timeout, WorkerError
from .._types import Atom
from .._wire import protocol as P

PIECE = P.MAX_CTL_MSG - P.HDR_LEN       # the most body one ctl message carries


class Ctl(Protocol):
    """What the calls need of the worker (_runtime.worker.Worker)."""

    max_frame: int

    def on_loop(self) -> bool: ...

    def send_ctl(self, frame: bytes) -> None: ...

    def wait_ctl(self, deadline: float, late: str) -> None: ...


class Caller(Protocol):
    """The port a call is made from (_runtime.conn.Conn): its atom for None."""

    none_atom: str


class ErlCalls:
    """The worker's calls to Erlang, by id."""

    def __init__(self, ctl: Ctl) -> None:
        self.ctl = ctl
        self.lock = threading.Lock()            # ids and waiting: any thread calls
        self.last_id = 0
        self.waiting: dict[int, tuple[Future[Any], str]] = {}
        self.pieces: dict[int, list[bytes]] = {}    # answers still coming (loop thread)

    def begin(self, conn: Caller, module: Atom, function: Atom, args: list[Any],
              timeout: float) -> tuple[int, Future[Any]]:
        """Send the request; the Future its answer completes."""
        body = (P.U32.pack(min(0xFFFFFFFF, max(1, round(timeout * 1000))))
                + encode((module, function, args), conn.none_atom))
        if len(body) + 6 > self.ctl.max_frame:
            raise ValueError(f"call_erlang: {len(body)} bytes is over the max_frame limit "
                             f"({self.ctl.max_frame})")
        fut: Future[Any] = Future()
        with self.lock:
            self.last_id = rid = self.last_id % 0xFFFFFFFF + 1
            self.waiting[rid] = (fut, conn.none_atom)
        try:
            for at in range(0, len(body), PIECE):
                more = P.FL_MORE if at + PIECE < len(body) else 0
                self.ctl.send_ctl(P.frame(P.CTL_ERL_CALL, body[at:at + PIECE], more, rid))
        except OSError as e:
            self.forget(rid)
            raise WorkerError("the node is gone") from e
        return rid, fut

    def bound(self, conn: Caller) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """call and call_async for the calls of one port (Conn.call_erlang, ...)."""
        return functools.partial(self.call, conn), functools.partial(self.call_async, conn)

    def forget(self, rid: int) -> None:
        with self.lock:
            self.waiting.pop(rid, None)

    def call(self, conn: Caller, module: Atom, function: Atom, args: list[Any],
             timeout: float) -> Any:
        """The blocking form: on the loop thread it reads ctl until the answer comes."""
        rid, fut = self.begin(conn, module, function, args, timeout)
        deadline = time.monotonic() + timeout
        late = f"call_erlang({module.name}, {function.name}, ...) got no answer in {timeout} s"
        try:
            if not self.ctl.on_loop():
                try:
                    return fut.result(timeout)
                except FutureTimeout:
                    raise Timeout(late) from None
            while not fut.done():
                try:
                    self.ctl.wait_ctl(deadline, late)
                except WorkerError:
                    if time.monotonic() >= deadline:
                        raise Timeout(late) from None
                    raise
            return fut.result()
        finally:
            self.forget(rid)

    async def call_async(self, conn: Caller, module: Atom, function: Atom, args: list[Any],
                         timeout: float) -> Any:
        """The awaitable form, for coroutines on the worker's asyncio loop."""
        import asyncio  # only coroutines get here: the worker imports asyncio for them

        rid, fut = self.begin(conn, module, function, args, timeout)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except asyncio.TimeoutError:
            raise Timeout(f"call_erlang({module.name}, {function.name}, ...) got no answer "
                          f"in {timeout} s") from None
        finally:
            self.forget(rid)

    def on_result(self, rid: int, fl: int, body: bytes) -> None:
        """CTL_ERL_RESULT, on the loop thread: a piece of an answer, or its last one."""
        got = self.pieces.setdefault(rid, [])
        got.append(body)
        if sum(map(len, got)) + 6 > self.ctl.max_frame:
            del self.pieces[rid]
            self.finish(rid, error=ProtocolError("a call_erlang answer over max_frame"))
            return
        if fl & P.FL_MORE:
            return
        del self.pieces[rid]
        self.finish(rid, b"".join(got))

    def finish(self, rid: int, etf: bytes = b"", error: BaseException | None = None) -> None:
        with self.lock:
            entry = self.waiting.pop(rid, None)
        if entry is None:
            return                              # its caller gave up
        fut, none_atom = entry
        if fut.done():                          # cancelled: a coroutine's wait_for ended
            return
        if error is None:
            try:
                answer = decode(etf, none_atom)
            except ValueError as e:
                error = ProtocolError(f"a call_erlang answer that does not decode: {e}")
            else:
                error = settle(fut, answer)
        if error is not None:
            fut.set_exception(error)

    def fail_all(self, why: str) -> None:
        """At shutdown: whoever waits learns the node is gone."""
        with self.lock:
            waiting, self.waiting = self.waiting, {}
        for fut, _ in waiting.values():
            if not fut.done():
                fut.set_exception(WorkerError(why))


def settle(fut: Future[Any], answer: Any) -> BaseException | None:
    """{ok, Result} completes the call; {error, Class, Reason, Stacktrace} is returned as
    its ErlangError; anything else is a ProtocolError."""
    if isinstance(answer, tuple) and len(answer) == 2 and answer[0] == Atom("ok"):
        fut.set_result(answer[1])
        return None
    if isinstance(answer, tuple) and len(answer) == 4 and answer[0] == Atom("error") \
            and isinstance(answer[1], Atom):
        return ErlangError(answer[1].name, answer[2], answer[3])
    return ProtocolError(f"a call_erlang answer of an unknown shape: {answer!r:.200}")

