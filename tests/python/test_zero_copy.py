"""Driver.zero_copy (docs/API.md): output and outputv get read-only memoryviews of the
worker's read buffer or of the port's shared memory, valid for the callback only. The data
is right at every size (inline, 64 KiB and more through the ring), pieces stay pieces, a
view kept past its callback raises ValueError, a slice or an exported view kept does not
break the worker (an inline body's stays valid and unchanged), under both lockings and
for an async def output. make test-pure runs this file again with PYBRIDGE_PURE=1."""
import mmap
import random
import time

import pytest
from test_accel import READERS, Sink, run, stream
from test_accel import ports as ports  # noqa: F401 - the fixture
from test_shm import iodata

from pybridge import Atom
from pybridge._runtime.views import kept

KIB, MIB = 1 << 10, 1 << 20
# inline, just under and over the ring's 64 KiB threshold, odd sizes, 3 MiB
SIZES = [1, 7, 1000, 64 * KIB - 5, 64 * KIB + 3, 200 * KIB + 1, 3 * MIB + 5]

def got(n):
    """What the test drivers say they were given for a body of n bytes."""
    return (Atom("data"), f"memoryview True {n}".encode())


def echoed_as_views(port, sent):
    """Send every body at once (pipelined), then see each reported as a view and echoed."""
    for data in sent:
        assert port.command(data)
    for data in sent:
        assert port.receive(timeout=10) == got(len(data))
        assert received(port, len(data)) == data


def received(port, n):
    """The bytes of the next {data, _} messages, up to n of them."""
    got = b""
    while len(got) < n:
        tag, data = port.receive(timeout=10)
        assert tag == Atom("data")
        got += iodata(data)
    assert len(got) == n
    return got


@pytest.mark.parametrize("cls", ["ZeroCopyEcho", "PortLocked"])
def test_output_gets_a_read_only_view_of_the_right_bytes(beam, cls):
    port = beam.open(f"zero_copy_echo:{cls}")
    r = random.Random(cls)
    sent = [r.randbytes(n) for n in SIZES * 2]
    echoed_as_views(port, sent)         # pipelined: the reader's buffer holds several at once
    port.close()


def test_outputv_gets_each_piece_as_a_view(beam):
    port = beam.open("zero_copy_outputv:ZeroCopyOutputv")
    r = random.Random(3)
    # ERTS hands pieces of 65 bytes and more (refc binaries) apart; the big ones: the ring
    for sizes in ([100, 200, 300], [70 * KIB + 1, 65, 100 * KIB + 7], [MIB + 3, 2 * MIB + 1]):
        pieces = [r.randbytes(n) for n in sizes]
        assert port.command(pieces)
        kinds = port.receive(timeout=10)[1].split(b",")
        assert all(k.startswith(b"memoryview True ") for k in kinds)
        assert sum(int(k.split()[2]) for k in kinds) == sum(sizes)
        assert received(port, sum(sizes)) == b"".join(pieces)
    port.close()


@pytest.mark.parametrize("cls", ["KeepsZeroCopyViews", "PortLocked"])
@pytest.mark.parametrize("size", [100, 300 * KIB + 1])
def test_views_kept_past_their_callback(beam, cls, size):
    port = beam.open(f"keeps_zero_copy_views:{cls}")
    r = random.Random(size)
    first, second = r.randbytes(size), r.randbytes(size)
    assert port.command(first)
    assert port.command(second)
    # later bodies make the reader read again and again, and reuse the ring's space
    later = [r.randbytes(n) for n in (10, size, 3 * size + 1, 5, size)]
    for data in later:
        assert port.command(data)
    for data in later:
        assert received(port, len(data)) == data
    view, kept_slice, exported = port.call(0, 0)
    assert view == Atom("ValueError")           # released when its callback returned
    if size < 64 * KIB:                         # the reader left its buffer to them
        assert (kept_slice, exported) == (first[1:9], second)
    else:
        # views of a body in the ring see memory the driver has written again since: no
        # promise on their bytes, but using them works and the port goes on
        assert (len(kept_slice), len(exported)) == (8, size)
    assert port.call(1, 0) == Atom("ok")
    again = r.randbytes(size)
    assert port.command(again)
    assert received(port, size) == again
    port.close()


def test_async_def_output_keeps_its_view_until_the_coroutine_ends(beam):
    port = beam.open("zero_copy_async:ZeroCopyAsync")
    r = random.Random(5)
    for n in (10, 100 * KIB + 1):
        data = r.randbytes(n)
        assert port.command(data)
        assert port.receive(timeout=10) == got(n)
        assert received(port, n) == data
        assert port.call(0, 0) == Atom("ValueError")
    # pipelined: each waits, kept, while the coroutine before it holds the port
    sent = [r.randbytes(n) for n in (10, 100 * KIB + 1, 3, MIB + 1, 7000) * 2]
    echoed_as_views(port, sent)
    port.close()


def test_a_view_holds_while_its_callback_waits_for_the_emulator(beam):
    port = beam.open("zero_copy_asks:ZeroCopyAsks")
    r = random.Random(6)
    sent = [r.randbytes(r.choice([9, 4000, 70 * KIB + 1, MIB + 1])) for _ in range(40)]
    for data in sent:           # queued behind each ask: read while its view is out
        assert port.command(data)
    for data in sent:
        assert received(port, len(data) + 5) == b"same " + data
    port.close()


def test_ring_space_under_a_view_is_not_handed_back_before_its_callback_ends(beam):
    # A's callback reads B's frame in an ask; a later ask flushes the worker's queue: had
    # it handed B's space back (and A's with it), the node would put C at the ring's front,
    # over A, while A's view is still out
    port = beam.open("zero_copy_asks:ZeroCopyAsks")
    assert bytes(port.control(1, b"0.2")) == b"ok"
    r = random.Random(7)
    a, b, c = (r.randbytes(MIB + i) for i in (1, 3, 5))
    assert port.command(a)
    time.sleep(0.1)
    assert port.command(b)
    time.sleep(0.4)
    assert port.command(c)
    for data in (a, b, c):
        assert received(port, len(data) + 5) == b"same " + data
    port.close()


# -- the readers alone, compiled and pure on the same inputs (test_accel.py's harness) --
def test_a_body_that_waits_keeps_the_readers_memory_and_copies_the_rings():
    buf = bytearray(b"abcdef")
    lent = memoryview(buf)[1:4].toreadonly()
    waits = kept([b"xy", lent])
    assert waits[0].__class__ is bytes and waits[1].obj is buf      # no copy
    lent.release()
    assert bytes(waits[1]) == b"bcd"
    ring = mmap.mmap(-1, 4096)
    ring[:3] = b"xyz"
    lent = memoryview(ring)[:3].toreadonly()
    waits = kept([lent])
    lent.release()
    ring[:3] = b"000"               # the driver's next body, in space handed back
    assert bytes(waits[0]) == b"xyz"



class ViewSink(Sink):
    """Records the bytes of what it is lent while it may use it; keeps every view and a
    slice of each, to try them after."""

    def __init__(self):
        super().__init__()
        self.views, self.slices = [], []

    def lent(self, view):
        assert type(view) is memoryview and view.readonly
        self.views.append(view)
        self.slices.append((view[1:], bytes(view[1:])))
        return bytes(view)

    def deliver(self, pieces):
        self.got.append(("deliver", [self.lent(p) for p in pieces]))

    def on_output(self, body):
        self.got.append(("on_output", self.lent(body)))


@pytest.mark.parametrize("cls", READERS)
def test_a_reader_with_views_lends_what_it_would_copy(ports, cls):
    data = stream()
    want = run(ports(cls), [data])
    port = ports(cls)
    port.reader.views = True
    sink = ViewSink()
    # a byte at a time: many fills, each of which would reuse the buffer the views are of
    assert run(port, [data[i:i + 1] for i in range(len(data))], sink) == want
    assert len(sink.views) == 14
    for view in sink.views:
        with pytest.raises(ValueError):
            bytes(view)
    for piece, was in sink.slices:
        assert bytes(piece) == was
