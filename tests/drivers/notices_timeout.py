"""control(1, Ms) works in small sleeps for Ms ms, noting a pybridge.Timeout raised in it;
control(2, _) answers b"yes" once one was."""
import time

import pybridge


class DriverLevel(pybridge.Driver):
    saw = False

    def control(self, command, data):
        if command == 2:
            return b"yes" if self.saw else b"no"
        end = time.monotonic() + int(data) / 1000
        try:
            while time.monotonic() < end:
                time.sleep(0.005)
        except pybridge.Timeout:
            self.saw = True
            raise
        return b"done"


class PortLevel(DriverLevel):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING
