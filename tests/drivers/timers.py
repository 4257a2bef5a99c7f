"""One timer per port: set, replace, cancel, read; timeout sends {timeout, N}."""
import pybridge
from pybridge import Atom


class Timers(pybridge.Driver):
    def start(self, command):
        self.fired = 0
        if command:
            self.port.set_timer(int(command))        # asked for in start

    def control(self, command, data):
        if command == 1:
            self.port.set_timer(int(data))
        elif command == 2:
            self.port.cancel_timer()
        elif command == 3:
            return str(self.port.read_timer())
        return None

    def timeout(self):
        self.fired += 1
        self.port.output_term((Atom("timeout"), self.fired))
