"""Only output: the pieces of an I/O list arrive joined."""
import pybridge


class OutputJoined(pybridge.Driver):
    def start(self, command):
        self.seen = []

    def output(self, data):
        self.seen.append(data)

    def call(self, command, term):
        return self.seen
