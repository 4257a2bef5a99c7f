"""CConn: a port whose per-frame work is compiled (pybridge._wire._accel.ConnCore, issue 14):
reading its channel, handing PY_OUTPUT, PY_CONTROL and PY_CALL frames to the driver's
callbacks, framing the reply and flushing, in C while no port thread or coroutine holds the
port. What C does not do itself comes back here or to Conn's own methods: a control's
result that is neither bytes nor None (a coroutine, a bytearray, ...), a call's that is not
a plain term, their exceptions,
frames set aside by an ask, EOF, a ProtocolError. CONN is the class the worker makes
(PYBRIDGE_PURE=1: Conn, every frame through Conn.dispatch); tests/python/test_accel.py runs
both on the same frames.
"""
from __future__ import annotations

import functools
from types import CoroutineType
from typing import Any, cast

from .._api.cport import CPort
from .._wire import _accel
from .._wire.accel import PURE
from .channel import OUT_HIGH
from .conn import Conn, Handler, Host
from .handlers import Reply, call_reply, control_reply, fail
from .runner import LATE
from .threads import PortThreads


class CConn(_accel.ConnCore, Conn):
    """Conn with on_readable, flush, queued and the common frames' dispatch compiled."""

    port_class = CPort
    queued_py = PortThreads.queued      # the compiled queued(), off the loop thread
    flush_py = Conn.flush               # the compiled ones, over the pure-Python reader
    on_readable_py = Conn.on_readable   # and writer (as tests make them)

    def __init__(self, host: Host, rfd: int, wfd: int, handlers: dict[int, Handler],
                 serial: int) -> None:
        # what the compiled methods read, before Conn.__init__ hands self.queued out
        self.dirty = host.dirty
        self.loop_ident = host.loop_ident
        self.late = LATE
        self.out_high = OUT_HIGH
        super().__init__(host, rfd, wfd, handlers, serial)
        self.reader = self.channel.reader
        cast(CPort, self.port)._c = self

    def control_done(self, rid: int, r: Any) -> None:
        """A control's result that the compiled reply does not frame: handlers.answer's."""
        self.answered(rid, r, "control", control_reply)

    def call_done(self, rid: int, r: Any) -> None:
        """A call's result that is not a plain term (_accel_etf.c): handlers.answer's."""
        self.answered(rid, r, "call", call_reply)

    def answered(self, rid: int, r: Any, what: str, reply: Reply) -> None:
        try:
            if r.__class__ is CoroutineType:
                self.run_coroutine(r, what, functools.partial(reply, self, rid, 0), rid)
            else:
                reply(self, rid, 0, r)
        except BaseException as e:  # noqa: BLE001 - SystemExit too: the callback's, answered
            fail(self, rid, e, what)

    def control_failed(self, exc: BaseException, rid: int) -> None:
        """What control raised: handlers.on_control's answer to it."""
        fail(self, rid, exc, "control")

    def call_failed(self, exc: BaseException, rid: int) -> None:
        """What call raised: handlers.on_call's answer to it."""
        fail(self, rid, exc, "call")

CONN: type[Conn] = Conn if PURE else CConn
