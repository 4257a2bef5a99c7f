"""The quick-start driver of the README: output, control, call and a counter."""
import pybridge


class Upper(pybridge.Driver):
    def start(self, command):
        self.count = 0
        self.command = command

    def output(self, data):
        self.count += 1
        self.port.output(data.upper())

    def control(self, command, data):
        return data[::-1]

    def call(self, command, term):
        return (pybridge.Atom("count"), self.count)
