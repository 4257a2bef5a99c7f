"""The worker's frame reader and writer (pybridge._wire): frames split at every byte
boundary, several per read, and bad lengths, give exactly the frames sent (or a protocol
error)."""
import os
import random
import socket

import pytest

from pybridge._errors import ProtocolError
from pybridge._runtime.conn import Conn
from pybridge._runtime.worker import Worker
from pybridge._wire import protocol as P


class PipeEnd:
    """The driver's side of a port's two pipes, with the socket calls the tests use."""

    def __init__(self, r: int, w: int) -> None:
        self.r, self.w = r, w

    def sendall(self, data: bytes) -> None:
        while data:
            data = data[os.write(self.w, data):]

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


@pytest.fixture
def conn():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    w = Worker(a.detach(), [])
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    c = w.accept(0, to_r, from_w)
    mine = PipeEnd(from_r, to_w)
    yield c, mine
    mine.close()
    b.close()


def frames(n, seed=1):
    # ids are not 0: an output without an id takes the reader's fast path (tested below)
    r = random.Random(seed)
    return [(P.PY_OUTPUT, r.getrandbits(7), r.getrandbits(32) or 1,    # FL_SHM (0x80) left out
             r.randbytes(r.choice([0, 1, 7, 300, 70000])))
            for _ in range(n)]


class Frames:
    """A FrameSink that keeps every frame as (op, fl, id, body)."""

    closed = False

    def __init__(self):
        self.got = []

    def dispatch(self, op, fl, rid, body):
        self.got.append((op, fl, rid, body))

    def deliver(self, pieces):
        self.got.append(("deliver", pieces))

    def on_output(self, body):
        self.got.append(("on_output", body))

    def resume(self):
        raise AssertionError("nothing drains the reader from inside")


def feed_and_take(c: Conn, sock, data: bytes, cut: int):
    """Send `cut` bytes at a time (in pieces the socket takes without blocking this one
    thread), taking whatever frames are whole after each."""
    reader, frames = c.channel.reader, Frames()
    for i in range(0, len(data), cut):
        chunk = data[i:i + cut]
        for j in range(0, len(chunk), 32768):
            sock.sendall(chunk[j:j + 32768])
            while reader.fill():
                pass
        reader.drain(frames)
    return frames.got


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 9, 10, 11, 4096, 1 << 20])
def test_split_anywhere(conn, cut):
    c, sock = conn
    sent = frames(40 if cut > 10 else 6)
    data = b"".join(P.frame(op, body, fl=fl, rid=rid) for op, fl, rid, body in sent)
    assert feed_and_take(c, sock, data, cut) == sent


@pytest.mark.parametrize("length", [0, 5, P.DEFAULT_MAX_FRAME + 1, 0xFFFFFFFF])
def test_bad_lengths_are_protocol_errors(conn, length):
    c, sock = conn
    sock.sendall(P.U32.pack(length) + b"\x12\x00\x00\x00\x00\x00")
    c.channel.reader.fill()
    with pytest.raises(ProtocolError):
        c.channel.reader.drain(Frames())


def test_a_long_callbacks_output_is_written_as_it_goes(conn):
    # over 64 KiB queued is written at once, before the callback returns to the loop, so
    # the node handles it meanwhile (it reads a port's frames even while a control waits)
    c, theirs = conn
    os.set_blocking(theirs.r, False)
    for i in range(100):
        c.port.output(i.to_bytes(4, "big") + bytes(1000))
    first = os.read(theirs.r, 1 << 20)
    assert len(first) >= 64 << 10
    assert first[:P.HDR_LEN + 4] == P.frame(P.DRV_OUTPUT, b"\0\0\0\0" + bytes(1000))[:14]
    assert c.writer.outlen < 64 << 10
    c.flush()                   # the loop's flush: the rest, in order
    rest = first + os.read(theirs.r, 1 << 20)
    assert rest == b"".join(P.frame(P.DRV_OUTPUT, i.to_bytes(4, "big") + bytes(1000))
                            for i in range(100))


@pytest.mark.parametrize("cut", [1, 3, 10, 11, 4096])
def test_the_read_loop_splits_anywhere(conn, cut):
    # the reader's fast path, which every message from Erlang goes through (on_readable):
    # one-piece outputs go straight to deliver, others to on_output or dispatch, in order
    c, sock = conn
    got = []
    c.deliver = lambda pieces: got.append(("deliver", pieces))
    c.on_output = lambda body: got.append(("on_output", body))
    c.dispatch = lambda op, fl, rid, body: got.append(("dispatch", op, fl, rid, body))
    r = random.Random(cut)
    sent, want = [], []
    for i in range(30):
        data = r.randbytes(r.choice([0, 1, 9, 300]))
        kind = i % 3
        if kind == 0:       # one piece, no id
            sent.append(P.frame(P.PY_OUTPUT, P.U32.pack(len(data)) + data))
            want.append(("deliver", [data]))
        elif kind == 1:     # two pieces
            body = P.U32.pack(1) + b"h" + P.U32.pack(len(data)) + data
            sent.append(P.frame(P.PY_OUTPUT, body))
            want.append(("on_output", body))
        else:               # anything else, or an output with an id (strict mode)
            op, rid = r.choice([(P.PY_CONTROL, 7), (P.PY_OUTPUT, 9)])
            sent.append(P.frame(op, data, rid=rid))
            want.append(("dispatch", op, 0, rid, data))
    stream = b"".join(sent)
    for i in range(0, len(stream), cut):
        sock.sendall(stream[i:i + cut])
        c.on_readable()
    assert got == want


@pytest.mark.parametrize("op", [P.PY_CALLER, P.PY_CONNECTED, P.PY_TIMEOUT, P.PY_SHM_RELEASE])
def test_a_short_body_closes_the_port_not_the_worker(conn, op):
    c, mine = conn
    mine.sendall(P.frame(op, b"\x01\x02\x03"))
    c.on_readable()                     # raised out of the loop before: the worker died
    assert c.closed
