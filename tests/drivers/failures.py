"""A command "KIND ARG" ends the port with one of the driver_failure forms."""
import errno

import pybridge


class Failures(pybridge.Driver):
    def output(self, data):
        kind, _, arg = data.partition(b" ")
        if kind == b"code":
            self.port.failure(int(arg))
        elif kind == b"atom":
            self.port.failure_atom(arg.decode())
        elif kind == b"posix":
            self.port.failure_posix(errno.EAGAIN)
        elif kind == b"eof":
            self.port.failure_eof()

