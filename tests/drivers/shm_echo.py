"""Echoes every command with the output form control(1) picks; control(2) answers whether
the port's shared memory is attached (so a test knows the large bodies went through it)."""
import pybridge


class ShmEcho(pybridge.Driver):
    def start(self, command):
        self.form = b"output"

    def outputv(self, iov):
        data = b"".join(iov)
        if self.form == b"output":
            self.port.output(data)
        elif self.form == b"outputv":
            self.port.outputv(b"", [data[:7], data[7:]])
        elif self.form == b"output_binary":
            self.port.output_binary(b"", data)
        else:
            self.port.output2(b"", data)

    def control(self, command, data):
        if command == 1:
            self.form = bytes(data)
            return b"ok"
        # private attribute on purpose: the test must know which path the bytes took
        return b"yes" if self.port._b.send.__self__.rings.mem is not None else b"no"
