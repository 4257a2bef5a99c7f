"""OTP's driver_SUITE_data/timer_drv.c in Python: a command's first byte starts the
timer for the u32 that follows, cancels it (answering CANCELLED) or sleeps a second
before starting it; its timeout outputs TIMER. Strict mode (blocking): the sleep holds
the port as the C driver's does."""
import time

import pybridge

START_TIMER, CANCEL_TIMER, DELAY_START_TIMER, TIMER, CANCELLED = range(5)


class TimerDrv(pybridge.Driver):
    blocking = True

    def output(self, buf):
        if buf[0] == START_TIMER:
            self.port.set_timer(int.from_bytes(buf[1:5], "big"))
        elif buf[0] == CANCEL_TIMER:
            self.port.cancel_timer()
            self.port.output(bytes([CANCELLED]))
        elif buf[0] == DELAY_START_TIMER:
            time.sleep(1)
            self.port.set_timer(int.from_bytes(buf[1:5], "big"))

    def timeout(self):
        self.port.output(bytes([TIMER]))
