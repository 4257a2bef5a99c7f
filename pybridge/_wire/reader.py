"""The one frame reader of a port's channel: bytes from the driver into frames, in order
(docs/PROTOCOL.md, Framing).

fill() reads what the descriptor has; drain() hands every whole frame to a FrameSink. Its
fast path is for the frame almost every message from Erlang is, a PY_OUTPUT of one piece
without an id: the piece goes to the sink's deliver() with one copy, never split or queued.
A body in shared memory (FL_SHM) is copied out of the driver's ring and its space handed
back at once. A callback run from drain() may drain the same reader again (a driver call
that waits for its answer takes the frames that come meanwhile): drain() notices and
picks up where that left the buffer.

With ``views`` set (a zero_copy driver, docs/API.md), output bodies go out as read-only
memoryviews of the buffer (or of the ring), released once the sink returns. A view still
out then (derived from one, or exported) keeps its memory: the buffer cannot be resized
while exported, and fill() starts a fresh one instead; the ring's space is handed back
only after the callback (Rings.pin).

FrameReader is the pure-Python reader; CFrameReader the same with fill/drain/buffered
compiled (_accel.c); READER is the one the worker uses (PYBRIDGE_PURE=1: FrameReader).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

from .._errors import ProtocolError
from . import _accel
from . import protocol as P
from .accel import PURE
from .rings import Rings
from .writer import FrameWriter

U32_FROM = P.U32.unpack_from
HEADER_FROM = P.HEADER.unpack_from
FL_SHM = P.FL_SHM
PY_OUTPUT = P.PY_OUTPUT

Body = bytes | memoryview           # memoryview: lent to a zero_copy driver (``views``)


class FrameSink(Protocol):
    """Where drain() puts frames; ``closed``: it wants no more."""

    closed: bool

    def dispatch(self, op: int, fl: int, rid: int, body: bytes) -> None:
        """Any frame but those below."""

    def deliver(self, pieces: list[Body]) -> None:
        """A PY_OUTPUT of one piece, without an id: the piece."""

    def on_output(self, body: Body) -> None:
        """A PY_OUTPUT of several pieces, without an id: its body."""

    def resume(self) -> None:
        """A frame's handler drained this reader itself: handle what it set aside."""


class FrameReader:
    """The bytes read from one descriptor and not yet handed out."""

    def __init__(self, fd: int, max_frame: int, rbuf: memoryview, rings: Rings,
                 writer: FrameWriter) -> None:
        self.fd = fd
        self.max_frame = max_frame
        self.rbuf = rbuf                # shared by every port of the worker: read, then copied
        self.rings = rings
        self.writer = writer            # hands ring space back
        self.buf = bytearray()
        self.pos = 0                    # frames before it are handed out
        self.fills = 0                  # reads so far: buf may have moved
        self.views = False              # output bodies as memoryviews, not bytes

    def fill(self) -> bool | None:
        """Read what the descriptor has: False at EOF, None if nothing now."""
        rbuf = self.rbuf
        try:
            n = os.readv(self.fd, (rbuf,))
        except BlockingIOError:
            return None
        except OSError:
            return False
        if not n:
            return False
        try:
            if self.pos and self.pos >= len(self.buf) // 2:
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += rbuf[:n]
        except BufferError:
            # a view of a body is still out: that buffer is left to it, unchanged
            self.buf = self.buf[self.pos:] + rbuf[:n]
            self.pos = 0
        self.fills += 1
        return True

    def buffered(self) -> bool:
        """Bytes are here that drain() has not handed out."""
        return self.pos < len(self.buf)

    def drain(self, sink: FrameSink) -> None:
        """Every whole frame to sink, in order, while it is open. ProtocolError: a frame
        length the protocol does not allow (the frames before it are handed out)."""
        buf, off = self.buf, self.pos
        dispatch, deliver, on_output = sink.dispatch, sink.deliver, sink.on_output
        max_frame = self.max_frame
        end = len(buf)
        # this loop runs once per message from Erlang
        while end - off >= 4 and not sink.closed:
            n = U32_FROM(buf, off)[0]
            if n < 6 or n > max_frame:
                raise ProtocolError(f"bad frame length {n}")
            if end - off - 4 < n:
                break
            _, op, fl, rid = HEADER_FROM(buf, off)
            start = off + 10
            off = self.pos = off + 4 + n
            fills = self.fills
            if fl & FL_SHM:
                self.from_ring(sink, op, fl, rid, bytes(buf[start:off]))
            elif op == PY_OUTPUT and not rid:
                one = n >= 10 and U32_FROM(buf, start)[0] == n - 10
                if self.views:
                    lend(deliver if one else on_output, buf, start + 4 if one else start, off,
                         one)
                elif one:
                    deliver([bytes(buf[start + 4:off])])
                else:
                    on_output(bytes(buf[start:off]))
            else:
                dispatch(op, fl, rid, bytes(buf[start:off]))
            if self.fills != fills or self.pos != off:
                # the handler drained this reader itself: buf moved under us
                sink.resume()
                buf = self.buf
                off, end = self.pos, len(buf)

    def from_ring(self, sink: FrameSink, op: int, fl: int, rid: int, ref: bytes) -> None:
        """A FL_SHM frame: its body copied out of the driver's ring (or, with views, lent
        from it), the space handed back."""
        rings = self.rings
        view, upto = rings.take(ref)
        if op == PY_OUTPUT and not rid and self.views:
            one = U32_FROM(view, 0)[0] == len(view) - 4
            rings.pin()                 # its space stays the driver's until the sink is done
            try:
                lend(sink.deliver if one else sink.on_output, view, 4 if one else 0,
                     len(view), one)
            finally:
                upto = rings.unpin(upto)
            if upto:
                self.writer.send(P.DRV_SHM_RETURN, P.U64.pack(upto))
            return
        upto = rings.returned(upto)
        if upto:
            self.writer.send(P.DRV_SHM_RETURN, P.U64.pack(upto))
        if op == PY_OUTPUT and not rid and U32_FROM(view, 0)[0] == len(view) - 4:
            sink.deliver([bytes(view[4:])])  # one piece: one copy
        else:
            sink.dispatch(op, fl & ~FL_SHM, rid, bytes(view))
        del view


def lend(to: Callable[[Any], object], buf: bytearray | memoryview, start: int, end: int,
         one: bool) -> None:
    """buf[start:end] to to(), as a read-only memoryview (in a list if one piece), released
    after: a ValueError for whoever uses it later. A view something still exports cannot be
    released: it stays valid, and so does its memory (fill, Rings.pin)."""
    view = memoryview(buf)[start:end].toreadonly()
    try:
        to([view] if one else view)
    finally:
        try:
            view.release()
        except BufferError:
            pass


class CFrameReader(_accel.Reader, FrameReader):
    """FrameReader with fill, drain and buffered compiled; from_ring is FrameReader's."""


READER: type[FrameReader] = FrameReader if PURE else CFrameReader
