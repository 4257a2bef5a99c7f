"""A zero_copy output that asks the emulator something (the worker reads the frames that
come meanwhile: the reader's buffer moves on, the ring's space is taken and handed back)
and then checks its view did not change under it: echoes b"same " + data, or b"changed".
control(1, Seconds) makes it ask three times, pausing that long after each (the pause lets
the node send more meanwhile; an ask flushes what the worker has queued, hand-backs of ring
space included)."""
import time

import pybridge


class ZeroCopyAsks(pybridge.Driver):
    zero_copy = True

    def start(self, command):
        self.asks, self.pause = 1, 0.0

    def control(self, command, data):
        self.asks, self.pause = 3, float(data)
        return b"ok"

    def output(self, data):
        before = bytes(data)
        for _ in range(self.asks):
            self.port.system_info()
            time.sleep(self.pause)
        self.port.output(b"same " + bytes(data) if bytes(data) == before else b"changed")
