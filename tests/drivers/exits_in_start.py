"""A driver whose start kills its worker: os._exit(9), every time."""
import os

import pybridge


class ExitsInStart(pybridge.Driver):
    def start(self, command):
        os._exit(9)
