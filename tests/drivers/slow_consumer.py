"""A consumer slower than its producer: sleeps a little per chunk, keeps a byte count and a
CRC-32 of everything it got; call answers {Count, Crc}."""
import time
import zlib

import pybridge


class SlowConsumer(pybridge.Driver):
    def start(self, command):
        self.count = 0
        self.crc = 0

    def outputv(self, iov):
        for piece in iov:
            self.count += len(piece)
            self.crc = zlib.crc32(piece, self.crc)
        time.sleep(0.0005)

    def call(self, command, term):
        return (self.count, self.crc)
