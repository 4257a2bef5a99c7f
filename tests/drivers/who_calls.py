"""caller() and connected() in every callback that has them."""
import pybridge
from pybridge import Atom


class WhoCalls(pybridge.Driver):
    def start(self, command):
        self.seen = {Atom("start"): (self.port.caller(), self.port.connected())}

    def output(self, data):
        self.seen[Atom("output")] = (self.port.caller(), self.port.connected())
        self.port.output(b"ok")

    def control(self, command, data):
        self.seen[Atom("control")] = (self.port.caller(), self.port.connected())
        return b""

    def call(self, command, term):
        self.seen[Atom("call")] = (self.port.caller(), self.port.connected())
        return self.seen
