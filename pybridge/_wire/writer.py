"""The one frame writer of a port's channel: every frame to the C driver goes through send().

Frames queue in ``out`` and are written without blocking: by the worker's loop after each
read (flush), or at once when a callback has queued OUT_FLUSH bytes, so a long callback's
output reaches Erlang while it runs. Bodies of SHM_MIN bytes or more go through the port's
shared memory when it has room (docs/PROTOCOL.md). send() is the single place where frames
are made, and it holds the writer's lock: a port's thread (port-level locking), an async_ job
or any thread of the driver's may send at once, and frames never interleave.

FrameWriter is the pure-Python writer; CFrameWriter the same with send's small frames and
write_out compiled (_accel.c), its lock an _accel.Lock the compiled code takes without a
call; WRITER is the one the worker uses (PYBRIDGE_PURE=1: FrameWriter).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from . import _accel
from . import protocol as P
from .accel import PURE
from .rings import REF, Rings

OUT_FLUSH = 64 << 10        # queued bytes written at once, inside a callback that goes on
HEADER_PACK = P.HEADER.pack
SHM_REF = REF.pack


class FrameWriter:
    """Queues frames for one descriptor and writes them as the descriptor takes them."""

    # the lock's kind: CFrameWriter's compiled send takes an _accel.Lock without a call
    new_lock: Callable[[], Any] = threading.Lock

    def __init__(self, fd: int, max_frame: int, rings: Rings,
                 queued: Callable[[], object]) -> None:
        self.fd = fd
        self.max_frame = max_frame
        self.rings = rings
        # told when frames wait where none did: someone must flush. Output that waits
        # already has its flush coming (the port is dirty, or its channel watched for
        # writing), so later frames need not tell again.
        self.queued = queued
        self.out: list[bytes | memoryview] = []   # memoryview: an unsent tail
        self.outlen = 0
        self.write_at = OUT_FLUSH        # outlen at which send() writes at once
        self.closed = False             # nothing is sent any more
        self.lock = self.new_lock()     # held by send, send_parts and write_out

    def send(self, op: int, body: bytes = b"", fl: int = 0, rid: int = 0) -> None:
        n = len(body)
        if n >= 512 or n + 6 > self.max_frame:
            self.send_large(op, body, fl, rid)
            return
        # _send's small-frame path inlined, and the lock taken without `with` (which makes
        # two bound methods each time): every control reply and most outputs come here,
        # and each of these is a measurable part of a round trip
        first = over = False
        self.lock.acquire()
        try:
            if not self.closed:
                out = self.out
                first = not out
                out.append(HEADER_PACK(n + 6, op, fl, rid) + body)
                self.outlen += 10 + n
                over = self.outlen >= self.write_at
        finally:
            self.lock.release()
        if over:
            self.write_out()
        if first:
            self.queued()

    def send_large(self, op: int, body: bytes, fl: int, rid: int) -> None:
        """send() of a body that is not small (the compiled send's too)."""
        with self.lock:
            self._send(op, body, fl, rid)
        self.write_due()

    def write_due(self) -> None:
        """A long callback's output reaches Erlang while it runs, not all at its end: once
        OUT_FLUSH bytes wait, they are written at once (the loop's flush still follows:
        errors, the rest, select)."""
        if self.outlen >= self.write_at:
            self.write_out()

    def _send(self, op: int, body: bytes, fl: int, rid: int) -> None:
        if self.closed:
            return
        n = len(body)
        if n + 6 > self.max_frame:
            raise ValueError(f"{n} bytes is over the max_frame limit ({self.max_frame})")
        if n >= P.SHM_MIN and self.to_ring(op, [body], n, fl, rid):
            return
        # small bodies are joined to their header now: one object per frame to join later
        if n < 512:
            self.out.append(HEADER_PACK(n + 6, op, fl, rid) + body)
        else:
            self.out.append(HEADER_PACK(n + 6, op, fl, rid))
            self.out.append(body)
        self.outlen += 10 + n
        # a callback of one port may write to another (create_port): the loop flushes all
        self.queued()

    def send_parts(self, op: int, parts: list[bytes]) -> None:
        """send() of a body given in parts: a large one goes to the ring without joining."""
        n = sum(map(len, parts))
        with self.lock:
            if not (n >= P.SHM_MIN and not self.closed and self.to_ring(op, parts, n, 0, 0)):
                self._send(op, b"".join(parts), 0, 0)
        self.write_due()

    def to_ring(self, op: int, parts: list[bytes], n: int, fl: int, rid: int) -> bool:
        """Put a large body in our ring and send its place; False: send it inline."""
        rings = self.rings
        if rings.out is None:
            if not rings.wanted:
                rings.wanted = True
                self._send(P.DRV_SHM_WANT, b"", 0, 0)
            return False
        pos = rings.place(parts, n)
        if pos is None:
            return False
        self.out.append(HEADER_PACK(6 + REF.size, op, fl | P.FL_SHM, rid) + SHM_REF(pos, n))
        self.outlen += P.HDR_LEN + REF.size     # the frame on the channel: header and pos/len
        self.queued()
        return True

    def write_out(self) -> bool:
        """Write what the descriptor takes now. False: the driver's end is gone."""
        self.lock.acquire()     # not `with`: see send()
        try:
            out = self.out
            while out:
                # small pieces go in one write; a large unsent head is written alone, so
                # that a full pipe never has everything queued joined again at each try
                if len(out) > 1 and len(out[0]) < OUT_FLUSH:
                    out[:] = [b"".join(out)]
                data = out[0]
                try:
                    n = os.write(self.fd, data)
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
        finally:
            self.lock.release()


class CFrameWriter(_accel.Writer, FrameWriter):
    """FrameWriter with send's small frames and write_out compiled; the rest is FrameWriter's."""

    new_lock = _accel.Lock


WRITER: type[FrameWriter] = FrameWriter if PURE else CFrameWriter
