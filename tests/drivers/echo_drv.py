"""OTP's port_trace_SUITE_data/echo_drv.c in Python: a command's first byte says what to
do with the rest (output it in one of the driver API's ways, set a timer, fail in one of
four ways); control echoes its data after the first byte, call echoes the term's external
form after `command` bytes. EchoDrv has output and no outputv, as echo_drv without
OUTPUTV; EchoDrvV adds an outputv that does nothing, as echo_drv with OUTPUTV set."""
import errno

import pybridge

(NOOP, OUTPUT, OUTPUT2, OUTPUT_BINARY, OUTPUTV, SET_TIMER, FAILURE_EOF, FAILURE_ATOM,
 FAILURE_POSIX, FAILURE, OUTPUT_TERM, DRIVER_OUTPUT_TERM, SEND_TERM, DRIVER_SEND_TERM,
 SAVE_CALLER) = range(15)


class EchoDrv(pybridge.Driver):
    # a command is done when port_command returns, as in C: the suite flushes traces then
    blocking = True

    def start(self, command):
        self.caller = self.port.caller()

    def output(self, buf):
        p, op, rest = self.port, buf[0], buf[1:]
        if op == OUTPUT:
            p.output(rest)
        elif op == OUTPUT2:
            p.output2(b"a", rest)
        elif op == OUTPUT_BINARY:
            p.output_binary(b"a", rest, 1, len(rest) - 1)
        elif op == OUTPUTV:
            p.enq(rest)
            p.outputv(b"a", p.peekq())
            p.deq(len(rest))
        elif op == SET_TIMER:
            p.set_timer(10)
        elif op == FAILURE_EOF:
            p.failure_eof()
        elif op == FAILURE_ATOM:
            p.failure_atom(rest.split(b"\0")[0].decode())
        elif op == FAILURE_POSIX:
            p.failure_posix(errno.EAGAIN)
        elif op == FAILURE:
            p.failure(rest[0])
        elif op in (OUTPUT_TERM, DRIVER_OUTPUT_TERM):
            p.output_term((pybridge.Atom("echo"), p, rest))
        elif op in (SEND_TERM, DRIVER_SEND_TERM):
            p.send_term(self.caller, (pybridge.Atom("echo"), p, rest))
        elif op == SAVE_CALLER:
            self.caller = p.caller()

    def control(self, command, data):
        return data[1:]

    def call(self, command, term):
        return term

    def timeout(self):
        pass


class EchoDrvV(EchoDrv):
    def outputv(self, iov):
        pass
