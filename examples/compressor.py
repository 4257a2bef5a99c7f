"""A streaming zlib compressor behind a port, buffered in the port's ERTS queue.

Open args: ``"LEVEL"`` or ``"LEVEL FILE"``. Compressed bytes go to the owner as
``{Port, {data, Bytes}}``, or, with FILE, into that file.

- ``port_command`` data joins the port's driver queue (``outputv`` -> ``enqv``;
  ``port_info(P, queue_size)`` counts it). A 0 ms timer compresses it BLOCK bytes a tick,
  so a producer faster than zlib fills the queue: above HIGH queued bytes the port is busy
  (``set_busy_port``) and ``port_command`` suspends its caller until LOW is reached. Less
  than a BLOCK waits in the queue for FLUSH, FINISH or the close.
- ``port_control`` FLUSH (1) compresses what is queued and returns a sync point
  (Z_SYNC_FLUSH) as a binary; FINISH (2) ends the stream. With FILE both go to the file and
  return ``<<>>``.
- ``port_call`` STATS (0): ``#{bytes_in, bytes_out}``; QUEUE (1):
  ``#{queued, peak_queue, busy_episodes}``.
- Closing the port with data queued (``port_close``, ``{Port, close}``, the owner's exit)
  makes ERTS call ``flush``, which compresses the rest. ERTS delivers nothing from a closing
  port, so only a FILE gets that data: ``stop`` ends the stream and renames ``FILE.part``
  to FILE, which so appears complete.

Erlang usage: examples/demo.erl (``make demo``).
"""
import os
import zlib

import pybridge
from pybridge import Atom

STATS, QUEUE = 0, 1
FLUSH, FINISH = 1, 2
BLOCK = 64 * 1024
HIGH, LOW = 1024 * 1024, 256 * 1024


class Compressor(pybridge.Driver):
    def start(self, command):
        level, _, path = command.partition(" ")
        self.z = zlib.compressobj(int(level) if level else 6)
        # control replies are compressed bytes: binaries, not lists
        self.port.set_port_control_flags(pybridge.PORT_CONTROL_FLAG_BINARY)
        self.path = path
        self.file = open(path + ".part", "wb") if path else None
        self.bytes_in = self.bytes_out = self.peak = self.busy_episodes = 0
        self.busy = self.ticking = self.finished = False

    def outputv(self, iov):
        self.port.enqv(iov)
        self.bytes_in += sum(len(piece) for piece in iov)
        queued = self.port.sizeq()
        self.peak = max(self.peak, queued)
        if queued > HIGH and not self.busy:
            self.busy = True
            self.busy_episodes += 1
            self.port.set_busy_port(True)
        if queued >= BLOCK and not self.ticking:
            self.ticking = True
            self.port.set_timer(0)

    def timeout(self):
        self.ticking = False
        self.compress_queued(BLOCK)
        if self.port.sizeq() >= BLOCK:
            self.ticking = True
            self.port.set_timer(0)

    def flush(self):
        self.compress_queued(self.port.sizeq())

    def stop(self):
        if self.file is None:
            return
        # what arrived after ERTS decided to close is only in this side's copy of the queue
        for piece in self.port.peekq():
            self.emit(self.z.compress(piece))
        if not self.finished:
            self.emit(self.z.flush(zlib.Z_FINISH))
        self.file.close()
        os.replace(self.path + ".part", self.path)

    def control(self, command, data):
        if command not in (FLUSH, FINISH):
            raise pybridge.BadArg(f"unknown control command {command}")
        self.compress_queued(self.port.sizeq())
        out = self.z.flush(zlib.Z_SYNC_FLUSH if command == FLUSH else zlib.Z_FINISH)
        self.finished = command == FINISH
        if self.file is not None:
            self.emit(out)
            return b""
        self.bytes_out += len(out)
        return out

    def call(self, command, term):
        if command == STATS:
            return {Atom("bytes_in"): self.bytes_in, Atom("bytes_out"): self.bytes_out}
        if command == QUEUE:
            return {Atom("queued"): self.port.sizeq(), Atom("peak_queue"): self.peak,
                    Atom("busy_episodes"): self.busy_episodes}
        raise pybridge.BadArg(f"unknown call command {command}")

    def compress_queued(self, limit):
        """Compress up to ``limit`` bytes from the front of the queue, then dequeue them."""
        done = 0
        for piece in self.port.peekq():
            if done >= limit:
                break
            piece = memoryview(piece)[:limit - done]
            self.emit(self.z.compress(piece))
            done += len(piece)
        left = self.port.deq(done)
        if self.busy and left <= LOW:
            self.busy = False
            self.port.set_busy_port(False)

    def emit(self, out):
        if not out:
            return
        self.bytes_out += len(out)
        if self.file is not None:
            self.file.write(out)
        else:
            self.port.output(out)
