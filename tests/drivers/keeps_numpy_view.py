"""A zero_copy driver that keeps numpy.frombuffer of its first output's view (an array over
the same memory), and the view, and says the sum of each later output's bytes computed on
a NumPy array over its view. call(0, _) answers {Array, View}: the bytes of the kept array,
and of the kept view or the name of the exception using it raises."""
import numpy

import pybridge


class KeepsNumpyView(pybridge.Driver):
    zero_copy = True

    def output(self, data):
        if not hasattr(self, "arr"):
            self.view, self.arr = data, numpy.frombuffer(data, dtype=numpy.uint8)
        else:
            self.port.output(str(int(numpy.frombuffer(data, dtype=numpy.uint8).sum())).encode())

    def call(self, command, term):
        try:
            view = bytes(self.view)
        except ValueError as e:
            view = pybridge.Atom(type(e).__name__)
        return (self.arr.tobytes(), view)
