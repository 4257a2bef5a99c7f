"""create_port: control 1 makes a new port owned by the caller, which announces itself;
control 2 says whether start ran on this instance."""
import pybridge
from pybridge import Atom


class Spawner(pybridge.Driver):
    def start(self, command):
        self.started = True

    def output(self, data):
        self.port.output(data.upper())

    def control(self, command, data):
        if command == 1:
            child = self.port.create_port(self.port.caller())
            assert isinstance(child.driver, Spawner) and child.driver is not self
            child.send_term(child.connected(), (Atom("created"), child))
            return b"created"
        return b"started" if getattr(self, "started", False) else b"not started"
