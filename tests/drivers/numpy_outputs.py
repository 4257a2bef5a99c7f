"""output() and outputv() of NumPy arrays: control 0 sends each array of ARRAYS with
output, control 1 all of them in one outputv; both answer how many arrays went."""
import numpy

import pybridge


def arrays():
    """The arrays sent, in order (the test makes the same): small and 8 MiB float64, a
    strided view, 2-D in C and in Fortran order, int32, and a 0-d array."""
    grid = numpy.arange(12, dtype=numpy.int64).reshape(3, 4)
    return [numpy.arange(10, dtype=numpy.float64), numpy.arange(1 << 20, dtype=numpy.float64),
            numpy.arange(40, dtype=numpy.int16)[::3], grid, numpy.asfortranarray(grid),
            numpy.arange(-5, 5, dtype=numpy.int32), numpy.array(2.5)]


class NumpyOutputs(pybridge.Driver):
    def control(self, command, data):
        sent = arrays()
        if command == 0:
            for arr in sent:
                self.port.output(arr)
        else:
            self.port.outputv(b"", sent)
        return str(len(sent)).encode()
