"""The pybridge side of `make bench` (one driver per scenario kind)."""
import time

import pybridge
from pybridge import Atom

TUPLE = (Atom("ok"), 42, b"hello", 3.5, Atom("done"))


class Echo(pybridge.Driver):
    """S1 control, S2/S3 command echo, S4 call, S6 1 MiB outputv -> output."""

    def start(self, command):
        self.port.set_port_control_flags(pybridge.PORT_CONTROL_FLAG_BINARY)

    def outputv(self, iov):
        self.port.outputv(b"", iov)

    def control(self, command, data):
        return data

    def call(self, command, term):
        return term


class EchoZeroCopy(Echo):
    """Echo with zero_copy: outputv gets views of the worker's buffers, not bytes (S6)."""

    zero_copy = True


class EchoPortLocked(Echo):
    """Echo with port-level locking: its own cost on S1 and S3 (pybridge_port_locked)."""

    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING


class Terms(pybridge.Driver):
    """S5: control N sends N 5-tuples with output_term."""

    def control(self, command, data):
        out = self.port.output_term
        for _ in range(command):
            out(TUPLE)
        return None


class Cpu(pybridge.Driver):
    """S8: each command burns the CPU for the ms it names, then answers."""

    def output(self, data):
        end = time.process_time() + int(data) / 1000
        while time.process_time() < end:
            pass
        self.port.output(b"done")


class Array(pybridge.Driver):
    """S10: control 0 answers the array's size in bytes; control K sends it K times with
    output(arr): an 8 MiB float64 NumPy array, handed over as it is."""

    def start(self, command):
        import numpy

        self.arr = numpy.arange(1 << 20, dtype=numpy.float64)

    def control(self, command, data):
        for _ in range(command):
            self.port.output(self.arr)
        return str(self.arr.nbytes).encode()


class SleepPortLocked(pybridge.Driver):
    """S11: each control, and each command, waits 10 ms as blocking I/O would, then echoes;
    port-level locking, so each port's callbacks run on a thread of their own."""

    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING

    def control(self, command, data):
        time.sleep(0.01)
        return data

    def output(self, data):
        time.sleep(0.01)
        self.port.output(data)


class Slow(pybridge.Driver):
    """S9: each command's handler takes 100 ms."""

    def output(self, data):
        time.sleep(0.1)
        self.port.output(b"done")


class Waits10ms(pybridge.Driver):
    """S12: each call waits 10 ms (I/O-bound: the GIL is free meanwhile), then echoes.
    Port-level locking, so that the members one worker serves wait at the same time."""

    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING

    def call(self, command, term):
        time.sleep(0.01)
        return term
