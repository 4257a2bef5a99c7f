"""The one frame reader of a port's channel: bytes from the driver into frames, in order
(docs/PROTOCOL.md, Framing).

fill() reads what the descriptor has; drain() hands every whole frame to a FrameSink. Its
fast path is for the frame almost every message from Erlang is, a PY_OUTPUT of one piece
without an id: the piece goes to the sink's deliver() with one copy, never split or queued.
A body in shared memory (FL_SHM) is copied out of the driver's ring and its space handed
back at once. A callback run from drain() may drain the same reader again (a driver call
that waits for its answer takes the frames that come meanwhile): drain() notices and
picks up where that left the buffer.

FrameReader is the pure-Python reader; CFrameReader the same with fill/drain/buffered
compiled (_accel.c); READER is the one the worker uses (PYBRIDGE_PURE=1: FrameReader).
"""
from __future__ import annotations

import os
from typing import Protocol

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


class FrameSink(Protocol):
    """Where drain() puts frames; ``closed``: it wants no more."""

    closed: bool

    def dispatch(self, op: int, fl: int, rid: int, body: bytes) -> None:
        """Any frame but those below."""

    def deliver(self, pieces: list[bytes]) -> None:
        """A PY_OUTPUT of one piece, without an id: the piece."""

    def on_output(self, body: bytes) -> None:
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
        if self.pos and self.pos >= len(self.buf) // 2:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += rbuf[:n]
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
                if n >= 10 and U32_FROM(buf, start)[0] == n - 10:    # one piece
                    deliver([bytes(buf[start + 4:off])])
                else:
                    on_output(bytes(buf[start:off]))
            else:
                dispatch(op, fl, rid, bytes(buf[start:off]))
            if self.fills != fills or self.pos != off:
                # the handler drained this reader itself: buf moved under us
                sink.resume()
                off, end = self.pos, len(buf)

    def from_ring(self, sink: FrameSink, op: int, fl: int, rid: int, ref: bytes) -> None:
        """A FL_SHM frame: its body copied out of the driver's ring, the space handed back."""
        view, upto = self.rings.take(ref)
        self.writer.send(P.DRV_SHM_RETURN, P.U64.pack(upto))
        if op == PY_OUTPUT and not rid and U32_FROM(view, 0)[0] == len(view) - 4:
            sink.deliver([bytes(view[4:])])  # one piece: one copy
        else:
            sink.dispatch(op, fl & ~FL_SHM, rid, bytes(view))
        del view


class CFrameReader(_accel.Reader, FrameReader):
    """FrameReader with fill, drain and buffered compiled; from_ring is FrameReader's."""


READER: type[FrameReader] = FrameReader if PURE else CFrameReader
