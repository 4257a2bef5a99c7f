"""control sleeps for the ms given as data, then answers with its command number."""
import time

import pybridge


class SlowControl(pybridge.Driver):
    def control(self, command, data):
        time.sleep(int(data or b"0") / 1000)
        return str(command)

    def call(self, command, term):
        time.sleep(term / 1000)
        return command
