"""The driver of the mix consumer: output echoes in capitals, control reverses, call tallies."""
import pybridge


class Tally(pybridge.Driver):
    none_atom = "nil"  # None reaches Elixir as nil

    def start(self, command):
        self.bytes = 0

    def output(self, data):
        self.bytes += len(data)
        self.port.output(data.upper())

    def control(self, command, data):
        return data[::-1]

    def call(self, command, term):
        return (term, self.bytes, None)
