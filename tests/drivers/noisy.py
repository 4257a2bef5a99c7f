"""Writes to stdout and stderr three ways: print, sys.stderr, and the raw descriptor."""
import os
import sys

import pybridge


class Noisy(pybridge.Driver):
    def control(self, command, data):
        print("printed", data.decode())
        sys.stderr.write("to stderr " + data.decode() + "\n")
        os.write(1, b"raw fd 1 " + data + b"\n")
        return None
