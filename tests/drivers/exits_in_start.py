"""A driver whose start kills its worker: os._exit(9), every time, under driver-level and
port-level locking (there start runs on the port's own thread)."""
import os

import pybridge


class ExitsInStart(pybridge.Driver):
    def start(self, command):
        os._exit(9)


class ExitsInStartPortLevel(ExitsInStart):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING
