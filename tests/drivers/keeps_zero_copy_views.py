"""A zero_copy driver that keeps what it must not: the view of its first output, a slice of
it, and the view of its second output exported (pickle.PickleBuffer holds a buffer of it,
as a C extension keeping a Py_buffer would). Later outputs are echoed. call(0, _) reports
what using each gives now: {View, Slice, Exported}, each the bytes or the name of the
exception; call(1, _) drops them all. PortLocked: the same on a port thread."""
import pickle

import pybridge
from pybridge import Atom


def use(view):
    try:
        return bytes(view)
    except Exception as e:  # noqa: BLE001 - the report is the exception's name
        return Atom(type(e).__name__)


class KeepsZeroCopyViews(pybridge.Driver):
    zero_copy = True

    def start(self, command):
        self.outputs = 0

    def output(self, data):
        self.outputs += 1
        if self.outputs == 1:
            self.view, self.slice = data, data[1:9]
        elif self.outputs == 2:
            self.exported, self.export = data, pickle.PickleBuffer(data)
        else:
            self.port.output(data)

    def call(self, command, term):
        if command == 1:
            del self.view, self.slice, self.exported, self.export
            return Atom("ok")
        return (use(self.view), use(self.slice), use(self.exported))


class PortLocked(KeepsZeroCopyViews):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING
