"""The watchdog: a thread of the worker that bounds how long callbacks run.

Every CHECK seconds it looks at what each thread runs for ports (a runner.Busy: the loop
thread's, and each port thread's under port-level locking):
 - a control or call past its port's timeout (its caller was told {pybridge, timeout}) gets
   pybridge.Timeout raised in its thread, once;
 - a callback past its class's callback_limit is hung. On a port's own thread the port
   ends: the node exits it {pybridge, hung} (DRV_HUNG) and the other ports go on. On the
   loop thread (driver-level locking) every port of the worker is stuck: the worker tells
   the node (CTL_HUNG) and exits, and the node exits its ports {pybridge, worker_hung}.
Raising in another thread is PyThreadState_SetAsyncExc: it lands at that thread's next
bytecode, so C code that does not return is not interrupted, and C code that holds the GIL
stops this thread too; the node bounds those itself (docs/RELIABILITY.md).
"""
from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any, Protocol

from .._errors import Timeout
from .runner import Busy

log = logging.getLogger("pybridge")

CHECK = 0.05                # seconds between looks
HUNG_STATUS = 70            # the worker's exit status when its loop thread hung


class Watched(Protocol):
    """What the watchdog needs of the worker (_runtime.worker.Worker)."""

    busy: Busy
    conns: set[Any]

    def worker_hung(self, conn: Any, stack: str) -> None: ...


def interrupt(ident: int) -> None:
    """pybridge.Timeout in thread ident, at its next bytecode."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(Timeout))


def stack_of(ident: int) -> str:
    frame = sys._current_frames().get(ident)
    return "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)"


class Watchdog:
    def __init__(self, host: Watched) -> None:
        self.host = host

    def start(self) -> None:
        threading.Thread(target=self.run, name="pybridge-watchdog", daemon=True).start()

    def run(self) -> None:
        while True:
            time.sleep(CHECK)
            now = time.monotonic()
            self.look(self.host.busy, now, True)
            for conn in list(self.host.conns):
                if conn.runner is not None:
                    self.look(conn.runner.busy, now, False)

    def look(self, busy: Busy, now: float, loop: bool) -> None:
        since, conn = busy.since, busy.conn
        if not since or conn is None or (not loop and conn.runner.stopped):
            return
        with busy.lock:
            if busy.deadline and now > busy.deadline and busy.told != busy.deadline:
                busy.told = busy.deadline
                interrupt(busy.ident)
        if now - since > conn.limit:
            stack = stack_of(busy.ident)
            if loop:
                self.host.worker_hung(conn, stack)
            else:
                interrupt(busy.ident)
                conn.hung(stack)


def exit_hung() -> None:
    os._exit(HUNG_STATUS)
