"""Tells its worker's environment: call(0, Name) is the variable's value, or undefined."""
import os

import pybridge


class ReportsEnv(pybridge.Driver):
    def call(self, command, name):
        value = os.environ.get(name.decode())
        return None if value is None else value.encode()
