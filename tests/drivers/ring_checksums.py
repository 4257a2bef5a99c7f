"""What crosses a port's shared-memory ring, by checksum. Each body from Erlang is
recorded as (len, crc32); call(0, _) returns them in order and forgets them. A command
b"send Seed N1 N2 ..." sends back bodies of those sizes, random.Random(Seed).randbytes(N)
each, from one callback. call(1, _) is the worker's OS pid (a test stops it a while)."""
import os
import random
import zlib

import pybridge


class RingChecksums(pybridge.Driver):
    def start(self, command):
        self.seen = []

    def output(self, data):
        if data.startswith(b"send "):
            seed, *sizes = map(int, data.split()[1:])
            r = random.Random(seed)
            for n in sizes:
                self.port.output(r.randbytes(n))
        else:
            self.seen.append((len(data), zlib.crc32(data)))

    def call(self, command, term):
        if command == 1:
            return os.getpid()
        seen, self.seen = self.seen, []
        return seen
