"""Counts commands and echoes each; control reports the count (ordering tests)."""
import pybridge


class Counter(pybridge.Driver):
    def start(self, command):
        self.n = 0

    def output(self, data):
        self.n += 1
        self.port.output(data)

    def control(self, command, data):
        return str(self.n)
