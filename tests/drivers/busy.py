"""set_busy_port on command "busy", off on control."""
import pybridge


class Busy(pybridge.Driver):
    def output(self, data):
        if data == b"busy":
            self.port.set_busy_port(True)
        else:
            self.port.output(data)

    def control(self, command, data):
        self.port.set_busy_port(False)
        return None
