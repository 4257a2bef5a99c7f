"""OTP's driver_SUITE_data/missing_callback_drv.c in Python: start selects a descriptor
that is always writable and one that is always readable and sets a timer of 0 ms, but
the class has no ready_output, ready_input, timeout, output, outputv, control or call.
The C driver selects /dev/null and /dev/zero; the worker's epoll refuses character
devices, so a socket pair stands in: one end always writable, the other kept readable."""
import socket

import pybridge


class MissingCallbackDrv(pybridge.Driver):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING

    def start(self, command):
        self.ofd, self.ifd = socket.socketpair()
        self.ofd.send(b"\0")
        self.port.select(self.ofd, pybridge.SELECT_WRITE, True)
        self.port.select(self.ifd, pybridge.SELECT_READ, True)
        self.port.set_timer(0)

    def stop(self):
        self.ofd.close()
        self.ifd.close()
