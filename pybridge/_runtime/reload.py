"""Hot code reload in the worker: CTL_RELOAD's load, commit and abort (docs/PROTOCOL.md,
"Reload"; docs/API.md, pybridge:reload/1).

load runs a module's source again, into new module objects kept aside (_runtime.loader),
in every import namespace of the worker that had it; nothing changes yet. commit puts them
in sys.modules, so that ports opened afterwards run the new code, and offers each open port
of the module its new class: on the thread that runs the port's callbacks, between two of
them (after a pending coroutine), a new class with code_change(self, old) gets a new
instance, made without start and with the port's handle, that takes what it needs from the
old one; the port switches to it when code_change returns. A class without code_change, or
a code_change that raises, leaves the port its old instance, and with it the old code
(whose functions keep the old module's globals) until the port closes. The answer comes
once every port has had its turn, or at the commit's timeout.
"""
from __future__ import annotations

import re
import threading
import time
import types
from collections.abc import Callable
from types import CoroutineType
from typing import Any, Protocol

from .._api.driver import Driver
from .._encode import encode
from .._errors import error_term
from .._types import Atom
from .._wire import protocol as P
from .conn import Conn
from .handlers import bind
from .loader import Loader
from .runner import Busy

LOAD, COMMIT, ABORT = 0, 1, 2       # CTL_RELOAD's phases
MAX_LOADS = 16                      # loads kept aside; an older one's caller died
MAX_ERRORS = 10                     # errors in a commit's answer
CUT_MESSAGE, CUT_TRACE = 1000, 4000     # bytes of an error's message, of its traceback's end
CTL_ROOM = 60000                    # bytes an answer may have: one ctl message (64 KiB) holds it
MODULE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
TIMEOUT = (Atom("pybridge"), Atom("timeout"))


class Host(Protocol):
    """What a reload needs of the worker (_runtime.worker.Worker)."""

    loader: Loader
    conns: set[Conn]
    busy: Busy
    limit: float

    def post(self, fn: Callable[[], object]) -> None: ...

    def send_ctl(self, frame: bytes) -> None: ...


class Loading:
    """Whom the loop thread serves while a module's code runs, for the watchdog."""

    timeout_ms = 0

    def __init__(self, name: str, limit: float) -> None:
        self.spec = f"the reload of {name}"
        self.limit = limit


def cut_error(exc: BaseException) -> tuple[Atom, Atom, bytes, bytes]:
    """error_term, short enough for a ctl message."""
    py, cls, msg, tb = error_term(exc)
    return py, cls, msg[:CUT_MESSAGE], tb[-CUT_TRACE:]


class Reloads:
    """The loads a worker keeps aside until their commit or abort."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.loads: dict[int, dict[str, types.ModuleType]] = {}

    def handle(self, rid: int, body: bytes) -> None:
        """One CTL_RELOAD, on the loop thread between callbacks."""
        phase, token = body[0], P.U64.unpack_from(body, 1)[0]
        if phase == LOAD:
            self.load(rid, token, body[9:].decode("utf-8", "replace"))
        elif phase == COMMIT and len(body) >= 13:
            Upgrade(self.host, rid, self.commit(token), P.U32.unpack_from(body, 9)[0]).start()
        elif phase == ABORT:
            self.loads.pop(token, None)
            self.host.send_ctl(P.frame(P.CTL_RELOAD, b"\x00", rid=rid))

    def load(self, rid: int, token: int, name: str) -> None:
        busy = self.host.busy
        was = busy.conn, busy.since
        busy.conn, busy.since = Loading(name, self.host.limit), time.monotonic()
        try:
            if not MODULE_RE.match(name):
                raise ValueError(f"bad module name {name!r}")
            loader = self.host.loader
            fresh = {full: loader.run_again(full) for full in loader.imported(name)}
        except BaseException as e:  # noqa: BLE001 - SystemExit too: the module's, answered
            self.host.send_ctl(P.frame(P.CTL_RELOAD, b"\x01" + encode(cut_error(e)), rid=rid))
            return
        finally:
            busy.conn, busy.since = was
        self.loads[token] = fresh
        while len(self.loads) > MAX_LOADS:
            del self.loads[next(iter(self.loads))]
        self.host.send_ctl(P.frame(P.CTL_RELOAD, b"\x00" + P.U32.pack(len(fresh)), rid=rid))

    def commit(self, token: int) -> list[tuple[Conn, types.ModuleType]]:
        """The load's modules in place; the open ports they concern, with their new module."""
        fresh = self.loads.pop(token, {})
        self.host.loader.install(fresh)
        return [(c, fresh[c.module]) for c in list(self.host.conns)
                if c.module in fresh and not (c.closed or c.closing)]


class Upgrade:
    """One commit's ports, each offered its new class once, and the answer."""

    def __init__(self, host: Host, rid: int, ports: list[tuple[Conn, types.ModuleType]],
                 timeout_ms: int) -> None:
        self.host, self.rid, self.ports = host, rid, ports
        self.lock = threading.Lock()        # the ports' threads vs. the answer
        self.waiting = {conn for conn, _ in ports}     # the ports whose turn has not come
        self.upgraded = self.kept = 0
        self.errors: list[Any] = []
        self.answered = False
        self.timer = threading.Timer(timeout_ms / 1000, host.post, (self.finish,))
        self.timer.daemon = True

    def start(self) -> None:
        if not self.ports:
            self.finish()
            return
        self.timer.start()
        for conn, mod in self.ports:
            self.offer(conn, mod)

    def offer(self, conn: Conn, mod: types.ModuleType) -> None:
        """On the thread that runs conn's callbacks, between two of them."""
        runner = conn.runner
        if runner is not None and not runner.on_thread():
            runner.submit(self.offer, conn, mod)
            return
        if conn.hold is not None:
            conn.hold.later(self.offer, conn, mod)
            return
        if runner is not None:
            self.swap(conn, mod)        # timed by the runner's Busy, flushed at its task's end
            return
        busy = self.host.busy
        was = busy.conn, busy.since
        busy.conn, busy.since = conn, time.monotonic()
        try:
            self.swap(conn, mod)
        finally:
            busy.conn, busy.since = was
        if not conn.closed:
            if conn.has_input():
                conn.on_readable()      # frames an ask of code_change set aside
            conn.flush()                # what code_change sent: the loop may sleep next

    def swap(self, conn: Conn, mod: types.ModuleType) -> None:
        if self.answered:                   # too late: the answer counted it kept
            return
        old, new, error = conn.instance, None, None
        gone = old is None or conn.closed or conn.closing
        cls = getattr(mod, conn.spec.rpartition(":")[2], None)
        if not gone and isinstance(cls, type) and issubclass(cls, Driver) and \
                callable(getattr(cls, "code_change", None)):
            try:
                new = cls()
                new.port = conn.port
                r = new.code_change(old)  # type: ignore[attr-defined]
                if r.__class__ is CoroutineType:
                    r.close()
                    raise TypeError("code_change must be a plain def, not an async def")
            except BaseException as e:  # noqa: BLE001 - SystemExit too: the port keeps its old
                conn.log_exception(e, "code_change")
                new, error = None, cut_error(e)
        with self.lock:
            if self.answered:               # came while code_change ran: kept after all
                return
            if new is not None:
                bind(conn, new)
                self.upgraded += 1
            elif not gone:
                self.kept += 1
                if error is not None:
                    self.errors.append(error)
            self.waiting.discard(conn)
            done = not self.waiting
        if done:
            self.host.post(self.finish)

    def finish(self) -> None:
        """On the loop thread: the answer, once (every port had its turn, or the timeout)."""
        with self.lock:
            if self.answered:
                return
            self.answered = True
            # a port that closed meanwhile (its turn dropped with what waited behind its
            # coroutine) counts for nothing, as one that closed before its turn
            late = sum(1 for c in self.waiting if not (c.closed or c.closing))
        self.timer.cancel()
        errors = (self.errors + [TIMEOUT] * late)[:MAX_ERRORS]
        listed = encode(errors)
        while len(listed) > CTL_ROOM:       # long class names: fewer errors, never no answer
            errors.pop()
            listed = encode(errors)
        body = P.U32.pack(self.upgraded) + P.U32.pack(self.kept + late) + listed
        self.host.send_ctl(P.frame(P.CTL_RELOAD, b"\x00" + body, rid=self.rid))
