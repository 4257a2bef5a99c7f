"""control N outputs N bytes (over the max_frame limit: a ValueError, nothing sent)."""
import pybridge


class BigOutput(pybridge.Driver):
    def control(self, command, data):
        self.port.output(b"x" * command)
        return b"sent"
