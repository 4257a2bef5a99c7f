"""control(1, Ms) sleeps Ms ms (time.sleep releases the GIL); any other command echoes.
PortLevel has port-level locking, DriverLevel the default driver-level locking."""
import time

import pybridge


class DriverLevel(pybridge.Driver):
    def control(self, command, data):
        if command == 1:
            time.sleep(int(data) / 1000)
            return b"slept"
        return data


class PortLevel(DriverLevel):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING
