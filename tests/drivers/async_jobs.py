"""async_: control starts a job sleeping N ms (data "N" or "N key"); ready_async reports it."""
import time

import pybridge
from pybridge import Atom


def nap(ms, tag):
    time.sleep(ms / 1000)
    return tag


class AsyncJobs(pybridge.Driver):
    def control(self, command, data):
        ms, _, key = data.decode().partition(" ")
        self.port.async_(nap, int(ms), command, key=key or None)
        return None

    def ready_async(self, result):
        self.port.output_term((Atom("done"), result))
