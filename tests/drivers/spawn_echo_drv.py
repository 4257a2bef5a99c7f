"""OTP's port_SUITE_data/echo_drv.c in Python (loaded as echo_drv): output echoes; a
start command beginning with "-" outputs the rest at once."""
import pybridge


class EchoDrv(pybridge.Driver):
    def start(self, command):
        if command.startswith("-"):
            self.port.output(command[1:].encode())

    def output(self, data):
        self.port.output(data)
