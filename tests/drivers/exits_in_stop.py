"""A driver whose stop kills its worker: os._exit(5) as its port closes, under driver-level
and port-level locking."""
import os

import pybridge


class ExitsInStop(pybridge.Driver):
    def stop(self):
        os._exit(5)


class ExitsInStopPortLevel(ExitsInStop):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING
