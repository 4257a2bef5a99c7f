"""The driver of the rebar3 consumer: output shouts, control reverses."""
import pybridge


class Shout(pybridge.Driver):
    def output(self, data):
        self.port.output(data.upper())

    def control(self, command, data):
        return data[::-1]
