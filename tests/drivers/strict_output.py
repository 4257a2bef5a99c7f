"""output sleeps the ms given as data. Strict: port_command waits for it (bounded);
Relaxed: it does not."""
import time

import pybridge


class Relaxed(pybridge.Driver):
    def output(self, data):
        time.sleep(int(data) / 1000)
        self.port.output(b"done")


class Strict(Relaxed):
    blocking = True
