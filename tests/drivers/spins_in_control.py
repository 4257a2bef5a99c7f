"""control(1, _) runs `while True: pass`; any other command echoes. callback_limit 500 ms."""
import pybridge


class DriverLevel(pybridge.Driver):
    callback_limit = 500

    def control(self, command, data):
        if command == 1:
            while True:
                pass
        return data


class PortLevel(DriverLevel):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING
