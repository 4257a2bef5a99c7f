"""Echoes every command back (however large); control answers the byte count so far."""
import pybridge


class BigEcho(pybridge.Driver):
    def start(self, command):
        self.total = 0

    def outputv(self, iov):
        for piece in iov:
            self.total += len(piece)
            self.port.output(piece)

    def control(self, command, data):
        return str(self.total)
