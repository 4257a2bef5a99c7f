"""A timer but no timeout callback: like a NULL timeout entry, nothing happens."""
import pybridge


class TimerWithoutTimeout(pybridge.Driver):
    def control(self, command, data):
        self.port.set_timer(int(data))
        return b"set"
