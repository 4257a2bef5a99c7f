"""The driver of the mix consumer: output echoes in capitals, control reverses, call tallies."""
import pybridge


class Tally(pybridge.Driver):
    none_atom = "nil"  # None reaches Elixir as nil

    def start(self, command):
        self.command = command
        self.bytes = 0

    def output(self, data):
        self.bytes += len(data)
        self.port.output(data.upper())

    def control(self, command, data):
        return data[::-1]

    def call(self, command, term):
        if command == 3:
            return self.command  # a str: it reaches Elixir as a string
        if command == 4:
            return {}[term.decode()]  # an Elixir string arrives as bytes
        return (term, self.bytes, None)
