"""One timer per port: set, replace, cancel, read; timeout sends {timeout, N}, and
{timeout_after_cancel, N} if it ever comes after cancel_timer returned."""
import pybridge
from pybridge import Atom


class Timers(pybridge.Driver):
    def start(self, command):
        self.fired = 0
        self.armed = False
        if command:
            self.armed = True
            self.port.set_timer(int(command))        # asked for in start

    def control(self, command, data):
        if command == 1:
            self.armed = True
            self.port.set_timer(int(data))
        elif command == 2:
            self.armed = False
            self.port.cancel_timer()
        elif command == 3:
            return str(self.port.read_timer())
        return None

    def timeout(self):
        if not self.armed:
            # cancel_timer returned before this timeout: the one thing that must not happen
            self.port.output_term((Atom("timeout_after_cancel"), self.fired))
        self.armed = False
        self.fired += 1
        self.port.output_term((Atom("timeout"), self.fired))
