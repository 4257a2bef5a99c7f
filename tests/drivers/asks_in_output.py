"""output asks the emulator something (a driver call that waits for an answer) for every
command, while many more commands are already queued behind it."""
import pybridge


class AsksInOutput(pybridge.Driver):
    def output(self, data):
        otp = self.port.system_info()["otp_release"]
        self.port.output(data + b" " + otp.encode())
