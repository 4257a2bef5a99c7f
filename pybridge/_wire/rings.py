"""A port's shared memory: the driver's ring (bodies in) and ours (bodies out).

docs/PROTOCOL.md ("Shared memory") is normative. One region of two halves, mapped from the
memfd CTL_SHM brought; a FL_SHM frame carries (pos, len) of its body in the sender's half.
Positions only grow: pos % half is the place. A body never wraps; an empty ring starts
again at its front, whose cache is warm. The reader hands space back with DRV_SHM_RETURN,
the driver with PY_SHM_RELEASE (release()). A body lent to a zero_copy driver's callback
pins the driver's ring: nothing is handed back until the callback is done (pin, unpin).
"""
from __future__ import annotations

import mmap
import struct

from .._errors import ProtocolError

REF = struct.Struct(">QQ")          # pos, len: the body of a FL_SHM frame


class Rings:
    """Both rings of one port; unmapped until attach()."""

    def __init__(self) -> None:
        self.mem: mmap.mmap | None = None
        self.inbound: memoryview | None = None     # the driver's half
        self.out: memoryview | None = None         # ours
        self.half = 0
        self.wpos = self.wrel = 0       # our next write, and what the driver has released
        self.wanted = False             # DRV_SHM_WANT sent
        self.pinned = 0                 # callbacks that hold views of the driver's ring
        self.due = 0                    # the position to hand back once none does

    def attach(self, fd: int, half: int) -> None:
        """Map the region (fd is the caller's to close). OSError: it could not be mapped."""
        self.mem = mmap.mmap(fd, 2 * half)      # holds a dup of fd: EMFILE is possible
        view = memoryview(self.mem)
        self.inbound, self.out, self.half = view[:half], view[half:], half

    def take(self, ref: bytes | bytearray) -> tuple[memoryview, int]:
        """Where the body of a FL_SHM frame is in the driver's ring, and the position to hand
        back (DRV_SHM_RETURN) once it is copied out: before anything can flush."""
        if self.inbound is None or len(ref) != REF.size:
            raise ProtocolError("FL_SHM frame without shared memory")
        pos, n = REF.unpack(ref)
        at = pos % self.half
        if at + n > self.half:
            raise ProtocolError("FL_SHM body outside the ring")
        return self.inbound[at:at + n], pos + n

    def returned(self, upto: int) -> int:
        """A body is copied out up to upto: the position to hand back now (0: none yet)."""
        if self.pinned:
            self.due = max(self.due, upto)
            return 0
        return upto

    def pin(self) -> None:
        """A view of the driver's ring goes to a callback: hand nothing back meanwhile."""
        self.pinned += 1

    def unpin(self, upto: int) -> int:
        """That callback is done, its body ended at upto: the position to hand back now."""
        self.pinned -= 1
        self.due = max(self.due, upto)
        if self.pinned:
            return 0
        upto, self.due = self.due, 0
        return upto

    def place(self, parts: list[bytes], n: int) -> int | None:
        """Copy a body of n bytes (in parts) into our ring; its position, or None when it does
        not fit now (it goes inline)."""
        out, half = self.out, self.half
        assert out is not None
        pos, rel = self.wpos, self.wrel
        at = pos % half
        if at and pos == rel:           # empty: the front, whose cache is warm
            pos = rel = pos + half - at
            at = 0
        elif at + n > half:             # a body never wraps
            pos += half - at
            at = 0
        if n > half or pos + n - rel > half:
            return None
        for part in parts:
            k = len(part)
            out[at:at + k] = part
            at += k
        self.wpos, self.wrel = pos + n, rel
        return pos

    def release(self, upto: int) -> None:
        """PY_SHM_RELEASE: the driver has read our ring up to there."""
        self.wrel = upto

    def close(self) -> None:
        if self.mem is not None:
            self.inbound = self.out = None
            try:
                self.mem.close()
            except BufferError:         # a view is still out: the mapping goes with it
                pass
