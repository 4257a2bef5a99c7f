"""control N makes one of the driver_output forms; the test checks the message shape."""
import pybridge


class OutputForms(pybridge.Driver):
    def control(self, command, data):
        p = self.port
        if command == 1:
            p.output2(b"\x01\x02", b"tail")
        elif command == 2:
            p.output_binary(b"\x01\x02", b"0123456789", 3, 4)
        elif command == 3:
            p.outputv(b"\x01\x02", [b"B1", b"B2", b"B3"])
        elif command == 4:
            p.outputv(b"", [b"skipped", b"kept"], skip=9)
        return None
