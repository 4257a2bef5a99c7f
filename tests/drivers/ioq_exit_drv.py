"""OTP's driver_SUITE_data/ioq_exit_drv.c in Python: control(Test) queues one byte; when
the port is closed with it queued, flush arms the way the test names (a descriptor ready
for input or output, a timer of 0 ms, an async job) and that callback dequeues the byte,
directly or through one more async job (the _ASYNC tests), so that the port can close.
The C driver selects /dev/zero and /dev/null; the worker's epoll refuses character
devices, so a socket pair stands in. driver_event (the EVENT tests) has no Python form."""
import socket

import pybridge

(READY_INPUT, READY_OUTPUT, TIMEOUT, READY_ASYNC, EVENT, READY_INPUT_ASYNC,
 READY_OUTPUT_ASYNC, TIMEOUT_ASYNC) = range(1, 9)
SUPPORTED = {READY_INPUT, READY_OUTPUT, TIMEOUT, READY_ASYNC, READY_INPUT_ASYNC,
             READY_OUTPUT_ASYNC, TIMEOUT_ASYNC}


class IoqExitDrv(pybridge.Driver):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING

    def start(self, command):
        self.test = None
        self.ifd = self.ofd = None

    def control(self, command, data):
        if command not in SUPPORTED:
            return b"error: command not supported"
        if command in (READY_INPUT, READY_INPUT_ASYNC):
            self.ifd, other = socket.socketpair()
            other.send(b"\0")
            self.keep = other
        elif command in (READY_OUTPUT, READY_OUTPUT_ASYNC):
            self.ofd, self.keep = socket.socketpair()
        self.port.enq(b"!")
        self.test = command
        return b"ok"

    def flush(self):
        if self.test in (READY_INPUT, READY_INPUT_ASYNC):
            self.port.select(self.ifd, pybridge.SELECT_READ, True)
        elif self.test in (READY_OUTPUT, READY_OUTPUT_ASYNC):
            self.port.select(self.ofd, pybridge.SELECT_WRITE, True)
        elif self.test in (TIMEOUT, TIMEOUT_ASYNC):
            self.port.set_timer(0)
        elif self.test == READY_ASYNC:
            self.port.async_(lambda: None)

    def done(self, async_test):
        if self.test == async_test:
            self.port.async_(lambda: None)
        else:
            self.port.deq(1)

    def ready_input(self, fileobj):
        self.port.select(fileobj, pybridge.SELECT_READ, False)
        self.done(READY_INPUT_ASYNC)

    def ready_output(self, fileobj):
        self.port.select(fileobj, pybridge.SELECT_WRITE, False)
        self.done(READY_OUTPUT_ASYNC)

    def timeout(self):
        self.done(TIMEOUT_ASYNC)

    def ready_async(self, result):
        self.port.deq(1)

    def stop(self):
        for f in (self.ifd, self.ofd, getattr(self, "keep", None)):
            if f is not None:
                f.close()
