"""A port's transport: its pipes (or one socket), the frame reader and writer over them, its
shared-memory rings, and what the worker's Poller wakes it for.

Wire format: docs/PROTOCOL.md. A Channel knows frames, not what they mean: the port
(_runtime.conn) owns it and decides. Kept apart so that a port's callbacks may one day run
on a thread of their own while the loop thread goes on reading and writing channels.
"""
from __future__ import annotations

import os
import select
import selectors
from collections.abc import Callable
from typing import Any

from .._wire.reader import READER
from .._wire.rings import Rings
from .._wire.writer import WRITER
from .poller import Poller

OUT_HIGH = 8 << 20          # unsent bytes of one port that pause reading it


class Channel:
    """One port's channel: rfd and wfd (the same descriptor for a socket)."""

    def __init__(self, rfd: int, wfd: int, max_frame: int, rbuf: memoryview, sel: Poller,
                 queued: Callable[[], object]) -> None:
        self.rfd, self.wfd = rfd, wfd
        self.sel = sel
        self.rings = Rings()
        self.writer = WRITER(wfd, max_frame, self.rings, queued)
        self.reader = READER(rfd, max_frame, rbuf, self.rings, self.writer)
        self.reading = self.writing = False     # registered with the Poller

    def attach(self, fd: int, half: int) -> None:
        """Map the shared memory CTL_SHM brought (fd is closed here). OSError: it could not."""
        try:
            self.rings.attach(fd, half)
        finally:
            os.close(fd)

    def rearm(self, may_read: bool, owner: Any) -> None:
        """Watch for what is due: reading unless too much output is unsent (or the port may
        not read), writing while output waits."""
        reading = may_read and self.writer.outlen < OUT_HIGH
        writing = bool(self.writer.out)
        if reading != self.reading or writing != self.writing:
            self.watch(reading, writing, owner)

    def watch(self, reading: bool, writing: bool, owner: Any) -> None:
        """What the Poller wakes owner for: each pipe apart, or one socket for both."""
        update, rd, wr = self.sel.update, selectors.EVENT_READ, selectors.EVENT_WRITE
        if self.rfd == self.wfd:
            update(self.rfd, (rd if self.reading else 0) | (wr if self.writing else 0),
                   (rd if reading else 0) | (wr if writing else 0), owner)
        else:
            update(self.rfd, rd if self.reading else 0, rd if reading else 0, owner)
            update(self.wfd, wr if self.writing else 0, wr if writing else 0, owner)
        self.reading, self.writing = reading, writing

    def wait_readable(self, timeout: float) -> bool:
        return timeout > 0 and bool(select.select([self.rfd], [], [], timeout)[0])

    def wait_writable(self, timeout: float) -> None:
        select.select([], [self.wfd], [], timeout)

    def close(self, owner: Any) -> None:
        """Nothing more is sent, watched or read; the descriptors and the mapping go."""
        self.writer.closed = True
        self.watch(False, False, owner)
        os.close(self.rfd)
        if self.wfd != self.rfd:
            os.close(self.wfd)
        self.rings.close()
