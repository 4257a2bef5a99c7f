"""Log capture: the worker's log records and whatever user code prints go to Erlang's logger.

Both travel as CTL_LOG frames on the ctl socket (docs/PROTOCOL.md); pybridge_worker logs
them with the worker's metadata.
"""
from __future__ import annotations

import io
import logging
import os
import socket
import sys
import threading
import traceback
from typing import cast

from .._encode import encode
from .._types import Atom
from .._wire import protocol as P


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
