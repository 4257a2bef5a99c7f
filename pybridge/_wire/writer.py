"""The one frame writer of a port's channel: every frame to the C driver goes through send().

Frames queue in ``out`` and are written without blocking: by the worker's loop after each
read (flush), or at once when a callback has queued OUT_FLUSH bytes, so a long callback's
output reaches Erlang while it runs. Bodies of SHM_MIN bytes or more go through the port's
shared memory when it has room (docs/PROTOCOL.md). send() is the single place where frames
are made, and it holds the writer's lock: a port's thread (port-level locking), an async_ job
or any thread of the driver's may send at once, and frames never interleave.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable

from . import protocol as P
from .rings import REF, Rings

OUT_FLUSH = 64 << 10        # queued bytes written at once, inside a callback that goes on
HEADER_PACK = P.HEADER.pack
SHM_REF = REF.pack


class FrameWriter:
    """Queues frames for one descriptor and writes them as the descriptor takes them."""

    def __init__(self, fd: int, max_frame: int, rings: Rings,
                 queued: Callable[[], object]) -> None:
        self.fd = fd
        self.max_frame = max_frame
        self.rings = rings
        self.queued = queued            # told of every frame queued: someone must flush
        self.out: list[bytes | memoryview] = []   # memoryview: an unsent tail
        self.outlen = 0
        self.write_at = OUT_FLUSH        # outlen at which send() writes at once
        self.closed = False             # nothing is sent any more
        self.lock = threading.Lock()    # held by send, send_parts and write_out

    def send(self, op: int, body: bytes = b"", fl: int = 0, rid: int = 0) -> None:
        with self.lock:
            self._send(op, body, fl, rid)

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
        if self.outlen >= self.write_at:
            # a long callback's output reaches Erlang while it runs, not all at its end;
            # the loop's flush still follows (errors, the rest, select)
            self._write_out()
        # a callback of one port may write to another (create_port): the loop flushes all
        self.queued()

    def send_parts(self, op: int, parts: list[bytes]) -> None:
        """send() of a body given in parts: a large one goes to the ring without joining."""
        n = sum(map(len, parts))
        with self.lock:
            if not (n >= P.SHM_MIN and not self.closed and self.to_ring(op, parts, n, 0, 0)):
                self._send(op, b"".join(parts), 0, 0)

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
        with self.lock:
            return self._write_out()

    def _write_out(self) -> bool:
        out = self.out
        while out:
            # small pieces go in one write; a large unsent head is written alone, so that
            # a full pipe never has everything queued joined again at each try
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
