"""The compiled hot path (pybridge._wire._accel) against the pure-Python one it stands for, on
the same inputs: the reader's frames split at every byte boundary, odd sizes, max_frame edges,
FL_SHM bodies, bad lengths and re-entrant drains; the writer's bytes, queue and lock with
threads sending at once; the Poller's events. And PYBRIDGE_PURE=1 reaching a real worker."""
import os
import random
import select
import struct
import threading

import pytest

from pybridge._errors import ProtocolError
from pybridge._runtime.poller import CPoller, Poller
from pybridge._wire import _accel
from pybridge._wire import protocol as P
from pybridge._wire.reader import CFrameReader, FrameReader
from pybridge._wire.rings import REF, Rings
from pybridge._wire.writer import OUT_FLUSH, CFrameWriter, FrameWriter

READERS = [FrameReader, CFrameReader]
WRITERS = [FrameWriter, CFrameWriter]
MAX_FRAME = 4096


class Sink:
    """A FrameSink that records every call; `hook(op)` may run inside dispatch."""

    closed = False

    def __init__(self, hook=None):
        self.got = []
        self.hook = hook

    def dispatch(self, op, fl, rid, body):
        self.got.append(("dispatch", op, fl, rid, body))
        if self.hook is not None:
            self.hook(self, op)

    def deliver(self, pieces):
        self.got.append(("deliver", pieces))

    def on_output(self, body):
        self.got.append(("on_output", body))

    def resume(self):
        self.got.append(("resume",))


class Port:
    """One reader and writer of one implementation over two fresh pipes (our ends)."""

    def __init__(self, reader_cls, writer_cls=FrameWriter, max_frame=MAX_FRAME, rings=None):
        self.to_r, self.to_w = os.pipe()         # the driver writes, the reader reads
        self.from_r, self.from_w = os.pipe()     # the writer writes, the driver reads
        os.set_blocking(self.to_r, False)
        os.set_blocking(self.from_w, False)
        self.queued = 0
        self.rings = rings or Rings()
        self.writer = writer_cls(self.from_w, max_frame, self.rings, self.count)
        self.reader = reader_cls(self.to_r, max_frame, memoryview(bytearray(256 << 10)),
                                 self.rings, self.writer)

    def count(self):
        self.queued += 1

    def feed(self, data):
        os.write(self.to_w, data)
        while self.reader.fill():
            pass

    def sent(self):
        """What the writer has written to the driver so far."""
        os.set_blocking(self.from_r, False)
        out = b""
        while True:
            try:
                chunk = os.read(self.from_r, 1 << 20)
            except BlockingIOError:
                return out
            out += chunk

    def close(self):
        for fd in (self.to_r, self.to_w, self.from_r, self.from_w):
            os.close(fd)


@pytest.fixture
def ports():
    made = []

    def make(*args, **kw):
        made.append(Port(*args, **kw))
        return made[-1]
    yield make
    for p in made:
        p.close()


def stream(seed=7):
    """Frames of every kind the reader tells apart, with odd and edge sizes."""
    r = random.Random(seed)
    out = []
    for size in (0, 1, 3, 4, 5, 7, 255, 511, 512, 513, 1001, MAX_FRAME - 6):
        body = r.randbytes(size)
        out.append(P.frame(P.PY_CONTROL, body, fl=r.getrandbits(7), rid=r.getrandbits(32)))
        out.append(P.frame(P.PY_OUTPUT, body, rid=1 + r.getrandbits(16)))
        if size <= MAX_FRAME - 10:      # one piece: deliver
            out.append(P.frame(P.PY_OUTPUT, P.U32.pack(size) + body))
    two = P.U32.pack(2) + b"ab" + P.U32.pack(3) + b"cde"
    out += [P.frame(P.PY_OUTPUT, two), P.frame(P.PY_OUTPUT, b"\0\0\0\x09xy"),
            P.frame(P.PY_OUTPUT, b""), P.frame(P.PY_STOP)]
    return b"".join(out)


def run(port, chunks, sink=None):
    sink = sink or Sink()
    for chunk in chunks:
        port.feed(chunk)
        port.reader.drain(sink)
    return sink.got


def test_every_split_gives_the_same_calls(ports):
    data = stream()
    whole = [run(ports(cls), [data]) for cls in READERS]
    assert whole[0] == whole[1]
    assert len(whole[0]) == 39
    # every byte boundary, on a stream of small frames (the long one at a few places)
    small = stream()[:600]
    want = run(ports(FrameReader), [small])
    for cut in range(len(small) + 1):
        assert run(ports(CFrameReader), [small[:cut], small[cut:]]) == want, cut
    for cut in (1, 4, 9, 10, 11, len(data) // 2, len(data) - 1):
        assert run(ports(CFrameReader), [data[:cut], data[cut:]]) == whole[0]


def test_a_byte_at_a_time(ports):
    data = stream()[:3000]
    got = [run(ports(cls), [data[i:i + 1] for i in range(len(data))]) for cls in READERS]
    assert got[0] == got[1] and got[0]


@pytest.mark.parametrize("length", [0, 5, MAX_FRAME + 1, 0xFFFFFFFF])
def test_bad_lengths_raise_the_same_protocol_error(ports, length):
    good = P.frame(P.PY_FLUSH, b"x")
    data = good + P.U32.pack(length) + b"\x12\x00\x00\x00\x00\x00" + good
    out = []
    for cls in READERS:
        port, sink = ports(cls), Sink()
        port.feed(data)
        with pytest.raises(ProtocolError) as e:
            port.reader.drain(sink)
        out.append((sink.got, str(e.value), port.reader.buffered()))
    assert out[0] == out[1]
    assert out[0][0] == [("dispatch", P.PY_FLUSH, 0, 0, b"x")]
    assert out[0][1] == f"bad frame length {length}"


def test_max_frame_itself_is_allowed(ports):
    data = P.frame(P.PY_CALL, bytes(MAX_FRAME - 6))
    got = [run(ports(cls), [data]) for cls in READERS]
    assert got[0] == got[1] == [("dispatch", P.PY_CALL, 0, 0, bytes(MAX_FRAME - 6))]


def test_a_large_frame_then_small_ones(ports):
    # the compiled reader gives a buffer over 1 MiB back once it is empty
    big = P.frame(P.PY_CALL, bytes(range(256)) * 8192)          # 2 MiB
    small = P.frame(P.PY_FLUSH, b"after")
    got = []
    for cls in READERS:
        port = ports(cls, max_frame=4 << 20)
        chunks = [big[i:i + 65536] for i in range(0, len(big), 65536)] + [small, small]
        got.append(run(port, chunks))
    assert got[0] == got[1]
    assert [g[1] for g in got[0]] == [P.PY_CALL, P.PY_FLUSH, P.PY_FLUSH]
    assert len(got[0][0][4]) == 2 << 20


def test_fill_says_eof_and_nothing_alike(ports):
    for cls in READERS:
        port = ports(cls)
        assert port.reader.fill() is None
        os.write(port.to_w, b"abc")
        assert port.reader.fill() is True
        assert port.reader.buffered() is True
        os.close(port.to_w)
        port.to_w = os.open("/dev/null", os.O_WRONLY)    # closed once, by the fixture
        assert port.reader.fill() is False


def test_a_closed_sink_stops_the_drain(ports):
    def close_at_call(sink, op):
        sink.closed = op == P.PY_CALL
    data = P.frame(P.PY_FLUSH) + P.frame(P.PY_CALL) + P.frame(P.PY_FLUSH)
    out = []
    for cls in READERS:
        port, sink = ports(cls), Sink(close_at_call)
        out.append((run(port, [data], sink), port.reader.buffered()))
    assert out[0] == out[1] == ([("dispatch", P.PY_FLUSH, 0, 0, b""),
                                 ("dispatch", P.PY_CALL, 0, 0, b"")], True)


def test_a_handler_that_drains_the_reader_itself(ports):
    # as an ask does: inside a frame's handler, more is read and drained by another sink,
    # and the outer drain resumes after what the inner one took
    later = P.frame(P.PY_ANSWER, b"answer", rid=9) + P.frame(P.PY_FLUSH, b"after")

    def ask(port):
        def hook(sink, op):
            if op == P.PY_CONTROL:
                inner = Sink()
                port.feed(later)
                port.reader.drain(inner)
                sink.got.append(("inner", inner.got))
        return hook
    out = []
    for cls in READERS:
        port = ports(cls)
        sink = Sink()
        sink.hook = ask(port)
        data = P.frame(P.PY_CONTROL, b"c") + P.frame(P.PY_TIMEOUT, b"t")
        out.append(run(port, [data], sink))
    assert out[0] == out[1]
    assert out[0] == [("dispatch", P.PY_CONTROL, 0, 0, b"c"),
                      ("inner", [("dispatch", P.PY_TIMEOUT, 0, 0, b"t"),
                                 ("dispatch", P.PY_ANSWER, 0, 9, b"answer"),
                                 ("dispatch", P.PY_FLUSH, 0, 0, b"after")]),
                      ("resume",)]


def test_fl_shm_bodies_come_out_of_the_ring_alike(ports):
    half = 1 << 16
    results = []
    for cls in READERS:
        fd = os.memfd_create("pb-accel-test")
        os.ftruncate(fd, 2 * half)
        rings = Rings()
        rings.attach(fd, half)
        os.close(fd)
        port = ports(cls, rings=rings)
        one = P.U32.pack(5) + b"hello"
        other = b"a control body"
        rings.inbound[100:100 + len(one)] = one
        rings.inbound[1000:1000 + len(other)] = other
        data = (P.frame(P.PY_OUTPUT, REF.pack(100, len(one)), fl=P.FL_SHM)
                + P.frame(P.PY_CONTROL, REF.pack(1000, len(other)), fl=P.FL_SHM | 1, rid=4))
        got = run(port, [data])
        port.writer.write_out()
        results.append((got, port.sent()))
        with pytest.raises(ProtocolError):     # a ref without a mapping behind it
            run(port, [P.frame(P.PY_OUTPUT, REF.pack(half - 1, 2), fl=P.FL_SHM)])
        rings.close()
    assert results[0] == results[1]
    assert results[0][0] == [("deliver", [b"hello"]),
                             ("dispatch", P.PY_CONTROL, 1, 4, b"a control body")]
    assert results[0][1] == (P.frame(P.DRV_SHM_RETURN, P.U64.pack(100 + 9))
                             + P.frame(P.DRV_SHM_RETURN, P.U64.pack(1000 + len(b"a control body"))))


def sends(writer):
    """The same sends, every path of send(): small, 511/512, keywords, large, over OUT_FLUSH."""
    writer.send(P.DRV_REPLY)
    writer.send(P.DRV_REPLY, fl=P.FL_NONE, rid=7)
    writer.send(P.DRV_OUTPUT, b"x" * 511, 0, 3)
    writer.send(P.DRV_OUTPUT, body=bytearray(b"y" * 512))
    writer.send(op=P.DRV_OUTPUT, body=memoryview(b"abc"), rid=0xFFFFFFFF)
    writer.send(P.DRV_REPLY, b"r" * (MAX_FRAME - 6))
    with pytest.raises(ValueError):
        writer.send(P.DRV_REPLY, b"r" * (MAX_FRAME - 5))
    for i in range(200):
        writer.send(P.DRV_OUTPUT, bytes(i % 37))


@pytest.mark.parametrize("cls", WRITERS)
def test_bad_send_arguments(ports, cls):
    w = ports(FrameReader, cls).writer
    with pytest.raises(struct.error):
        w.send(256)
    with pytest.raises(struct.error):
        w.send(P.DRV_REPLY, rid=1 << 32)
    with pytest.raises(TypeError):
        w.send(P.DRV_REPLY, "text")
    assert w.out == [] and w.outlen == 0


def test_the_writers_send_the_same_bytes(ports):
    out = []
    for cls in WRITERS:
        port = ports(FrameReader, cls)
        sends(port.writer)
        assert port.writer.write_out() is True
        out.append((port.sent(), port.writer.outlen, port.writer.out, port.queued,
                    port.writer.write_at))
    assert out[0] == out[1]
    assert out[0][0].startswith(P.frame(P.DRV_REPLY) + P.frame(P.DRV_REPLY, fl=1, rid=7))
    assert out[0][1:] == (0, [], out[0][3], OUT_FLUSH) and out[0][3] >= 2


def test_a_full_pipe_and_a_gone_reader(ports):
    out = []
    for cls in WRITERS:
        port = ports(FrameReader, cls)
        for i in range(300):    # 300 KiB: more than the pipe takes
            port.writer.send(P.DRV_OUTPUT, bytes([i % 256]) * 1000)
        first = port.sent()
        left = port.writer.outlen
        while port.writer.out:
            port.writer.write_out()
            first += port.sent()
        out.append((first, left > 0))
        port.writer.send(P.DRV_OUTPUT, b"late")
        os.close(port.from_r)
        port.from_r = os.open("/dev/null", os.O_RDONLY)
        assert port.writer.write_out() is False     # EPIPE: the driver's end is gone
    assert out[0] == out[1] and out[0][1]


@pytest.mark.parametrize("cls", WRITERS)
def test_a_closed_writer_sends_nothing(ports, cls):
    port = ports(FrameReader, cls)
    port.writer.closed = True
    port.writer.send(P.DRV_REPLY, b"dropped")
    assert port.writer.out == [] and port.queued == 0


@pytest.mark.parametrize("cls", WRITERS)
def test_threads_sending_at_once_never_interleave(ports, cls):
    port = ports(FrameReader, cls)
    threads, per = 4, 400
    got = bytearray()
    done = threading.Event()

    def drain():
        while not done.is_set() or port.writer.out:
            port.writer.write_out()
            got.extend(port.sent())
        got.extend(port.sent())

    def sender(t):
        r = random.Random(t)
        for i in range(per):
            size = r.choice([0, 5, 300, 600, 3000])
            port.writer.send(P.DRV_OUTPUT, bytes([t]) + i.to_bytes(4, "big") + bytes(size))
    reader = threading.Thread(target=drain)
    reader.start()
    ts = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    done.set()
    reader.join()
    seen = {t: [] for t in range(threads)}
    off = 0
    while off < len(got):
        n, op, _, _ = P.HEADER.unpack_from(got, off)
        assert op == P.DRV_OUTPUT
        body = bytes(got[off + P.HDR_LEN:off + 4 + n])
        seen[body[0]].append(int.from_bytes(body[1:5], "big"))
        off += 4 + n
    assert off == len(got)
    assert all(seen[t] == list(range(per)) for t in range(threads))


@pytest.mark.parametrize("cls", WRITERS)
def test_send_waits_for_the_lock_held_elsewhere(ports, cls):
    # a frame another thread is making (the lock held) is whole before the next one starts
    port = ports(FrameReader, cls)
    w = port.writer
    started = threading.Event()

    def other():
        started.set()
        w.send(P.DRV_REPLY, b"second")
    with w.lock:
        w.out.append(P.HEADER.pack(6 + 3, P.DRV_OUTPUT, 0, 0))
        t = threading.Thread(target=other)
        t.start()
        started.wait()
        t.join(0.05)
        assert t.is_alive()                 # waits for the lock
        w.out.append(b"one")
        w.outlen += P.HDR_LEN + 3
    t.join()
    assert w.write_out() is True
    assert port.sent() == P.frame(P.DRV_OUTPUT, b"one") + P.frame(P.DRV_REPLY, b"second")


def test_the_lock_behaves_as_threading_lock():
    lock = _accel.Lock()
    assert lock.acquire() is True and lock.locked()
    assert lock.acquire(False) is False
    assert lock.acquire(timeout=0.01) is False
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
    with lock:
        assert lock.locked()
    assert not lock.locked()


def test_the_pollers_report_the_same_events():
    out = []
    for cls in (Poller, CPoller):
        poller = cls()
        a_r, a_w = os.pipe()
        b_r, b_w = os.pipe()
        os.write(a_w, b"x")
        os.close(b_w)                       # b_r: hung up
        poller.register(a_r, 1, "a read")
        poller.register(a_w, 2, "a write")
        poller.register(b_r, 1, "b hup")
        got = sorted(poller.select(0))
        poller.unregister(a_r)
        poller.unregister(b_r)
        poller.modify(a_w, 2, "a again")
        out.append((got, sorted(poller.select(None))))
        for fd in (a_r, a_w, b_r):
            os.close(fd)
    assert out[0] == out[1]
    assert out[0][0] == [("a read", 1), ("a write", 2), ("b hup", 1)]
    assert out[0][1] == [("a again", 2)]


def test_a_poll_with_nothing_ready_waits_its_timeout():
    poller, (r, w) = CPoller(), os.pipe()
    poller.register(r, 1, "r")
    assert poller.select(0.002) == [] and poller.select(0) == []
    assert select.select([r], [], [], 0)[0] == []
    os.close(r)
    os.close(w)


@pytest.mark.parametrize("pure", ["", "1"])
def test_pybridge_pure_reaches_the_worker(start_node, pure, monkeypatch):
    monkeypatch.setenv("PYBRIDGE_PURE", pure)
    node = start_node("""
        application:load(pybridge),
        application:set_env(pybridge, python_path, [filename:absname("tests/drivers")]),
        {ok, _} = application:ensure_all_started(pybridge),
        P = pybridge:open("reports_hot_path:ReportsHotPath", [binary]),
        io:format("~s~n", [erlang:port_control(P, 0, <<>>)]),
        erlang:halt().""")
    out, _ = node.communicate(timeout=60)
    want = "FrameReader FrameWriter Poller" if pure else "CFrameReader CFrameWriter CPoller"
    assert out.strip().splitlines()[-1] == want
