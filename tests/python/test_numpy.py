"""NumPy arrays (a test extra, `pip install -e '.[test]'`, which make test does): sent with
output and outputv, every layout arriving as its C-order bytes (an 8 MiB one through the
ring); and numpy.frombuffer over a zero_copy view, used in the callback and kept past it.
Skipped, and said so, only where NumPy is not installed."""
import random

import pytest
from test_shm import iodata

from pybridge import Atom

numpy = pytest.importorskip("numpy", reason="NumPy (the test extra) is not installed")


def expected():
    """What numpy_outputs.arrays() makes, as the C-order bytes of each."""
    ints = list(range(12))
    return [numpy.arange(10, dtype="<f8").tobytes(), numpy.arange(1 << 20, dtype="<f8").tobytes(),
            numpy.array(range(0, 40, 3), dtype="<i2").tobytes(),
            numpy.array(ints, dtype="<i8").tobytes(),
            numpy.array(ints, dtype="<i8").tobytes(),      # Fortran order, sent as C order
            numpy.array(range(-5, 5), dtype="<i4").tobytes(), numpy.array(2.5).tobytes()]


def test_arrays_of_every_layout_arrive_as_their_c_order_bytes(beam):
    port = beam.open("numpy_outputs:NumpyOutputs")
    want = expected()
    assert bytes(port.control(0)) == b"%d" % len(want)
    for data in want:
        assert port.receive(timeout=10) == (Atom("data"), data)
    assert bytes(port.control(1)) == b"%d" % len(want)
    tag, got = port.receive(timeout=10)
    assert tag == Atom("data") and iodata(got) == b"".join(want)
    port.close()


def test_a_numpy_array_over_a_zero_copy_view(beam):
    port = beam.open("keeps_numpy_view:KeepsNumpyView")
    r = random.Random(9)
    first = r.randbytes(1000)
    assert port.command(first)
    later = [r.randbytes(n) for n in (5, 3000, 200 * 1024 + 1, 17)]
    for data in later:
        assert port.command(data)
    for data in later:
        assert port.receive(timeout=10) == (Atom("data"), b"%d" % sum(data))
    # the view was released; the array over the same memory was not: the reader left it
    # that buffer, unchanged
    assert port.call(0, 0) == (first, Atom("ValueError"))
    port.close()
