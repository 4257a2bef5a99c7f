"""start raises while the file its command names exists (a member that cannot come back
until the test lets it); call answers the worker's pid."""
import os

import pybridge


class RefusesWhileFileExists(pybridge.Driver):
    def start(self, command):
        if os.path.exists(command):
            raise RuntimeError("refused while " + command + " exists")

    def call(self, command, term):
        return os.getpid()
