"""output raises on b"boom"; otherwise echoes. The port and the worker must survive."""
import pybridge


class RaisingOutput(pybridge.Driver):
    def output(self, data):
        if data == b"boom":
            raise ZeroDivisionError("boom in output")
        self.port.output(data)
