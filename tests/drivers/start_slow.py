"""start takes longer than the open timeout."""
import time

import pybridge


class StartSlow(pybridge.Driver):
    def start(self, command):
        time.sleep(float(command or "2"))
