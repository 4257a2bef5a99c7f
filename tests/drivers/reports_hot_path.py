"""Tells which implementation of the per-frame hot path its worker runs: control's reply is
the class names of the reader, the writer and the Poller (PYBRIDGE_PURE=1: the pure ones)."""
import pybridge
from pybridge._runtime.poller import POLLER
from pybridge._wire.reader import READER
from pybridge._wire.writer import WRITER


class ReportsHotPath(pybridge.Driver):
    def control(self, command, data):
        return f"{READER.__name__} {WRITER.__name__} {POLLER.__name__}".encode()
