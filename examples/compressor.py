"""A streaming zlib compressor behind a port.

port_command data is compressed as it arrives and compressed bytes come back as
{Port, {data, Bytes}} whenever zlib has some; port_control FLUSH (1) returns (as a binary) what
is buffered so far as a sync point, FINISH (2) ends the stream; port_call STATS (0)
answers a map of byte counts.
"""
import zlib

import pybridge
from pybridge import Atom

STATS, FLUSH, FINISH = 0, 1, 2


class Compressor(pybridge.Driver):
    def start(self, command):
        self.z = zlib.compressobj(int(command) if command else 6)
        # control replies are compressed bytes: binaries, not lists
        self.port.set_port_control_flags(pybridge.PORT_CONTROL_FLAG_BINARY)
        self.bytes_in = self.bytes_out = 0

    def outputv(self, iov):
        for piece in iov:
            self.bytes_in += len(piece)
            out = self.z.compress(piece)
            if out:
                self.bytes_out += len(out)
                self.port.output(out)

    def control(self, command, data):
        if command == FLUSH:
            out = self.z.flush(zlib.Z_SYNC_FLUSH)
        elif command == FINISH:
            out = self.z.flush(zlib.Z_FINISH)
        else:
            raise pybridge.BadArg(f"unknown control command {command}")
        self.bytes_out += len(out)
        return out

    def call(self, command, term):
        if command != STATS:
            raise pybridge.BadArg(f"unknown call command {command}")
        return {Atom("bytes_in"): self.bytes_in, Atom("bytes_out"): self.bytes_out}
