"""control(1, "K N") starts K plain threads, each sending N outputs b"k:i" through
self.port.output while the port's callbacks run; control(2, _) answers b"ok"."""
import threading

import pybridge


class DriverLevel(pybridge.Driver):
    def control(self, command, data):
        if command == 1:
            k, n = map(int, data.split())
            for t in range(k):
                threading.Thread(target=self.hammer, args=(t, n), daemon=True).start()
        return b"ok"

    def hammer(self, t, n):
        for i in range(n):
            self.port.output(b"%d:%d" % (t, i))


class PortLevel(DriverLevel):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING
