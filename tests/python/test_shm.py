"""Large bodies through the port's shared memory (docs/PROTOCOL.md, Shared memory): odd
sizes on both sides of the 64 KiB threshold and of the 8 MiB ring, enough of them to wrap
the rings several times, mixed with small ones, every output form; bytes and order kept.
By checksum: sizes no multiple of 8 wrapping the ring ten times each way, and a peer
stopped (SIGSTOP) while the other fills the ring: woken by its pipe, it loses nothing."""
import contextlib
import os
import random
import signal
import threading
import zlib

import pytest

from pybridge import Atom, ImproperList

# hundreds of MiB through the C driver's and the compiled reader's rings: run under one
# CPython (make test-pythons), the suite's other interpreters skip them
pytestmark = pytest.mark.heavy

KIB, MIB = 1 << 10, 1 << 20
SIZES = [64 * KIB - 5, 64 * KIB - 4, 64 * KIB - 3, 64 * KIB + 1, MIB + 3, 3 * MIB + 1,
         8 * MIB - 4, 8 * MIB - 3, 8 * MIB + 1, 17, 0x1_0001]


def iodata(d) -> bytes:
    """What driver_outputv & co. deliver (a binary, or a list of bytes and binaries)."""
    if isinstance(d, bytes):
        return d
    if isinstance(d, int):
        return bytes([d])
    if isinstance(d, ImproperList):
        return b"".join(map(iodata, d.items)) + iodata(d.tail)
    return b"".join(map(iodata, d))


def shm_attached(port) -> bool:
    return bytes(port.control(2)) == b"yes"


def echo_all(port, sizes, seed):
    r = random.Random(seed)
    sent = [r.randbytes(n) for n in sizes]
    for data in sent:
        assert port.command(data) is True
    for data in sent:
        got = b""
        while len(got) < len(data):
            msg = port.receive(timeout=10)
            assert msg[0] == Atom("data")
            got += iodata(msg[1])
        assert got == data


FORMS = ["output", "outputv", "output_binary", "output2"]


@pytest.mark.parametrize("seed, form", list(enumerate(FORMS)))
def test_odd_sizes_both_ways_every_form(beam, seed, form):
    port = beam.open("shm_echo:ShmEcho")
    assert not shm_attached(port)
    port.control(1, form.encode())
    echo_all(port, SIZES * 2, seed=seed)
    assert shm_attached(port)
    port.close()


def test_small_and_large_interleaved_keep_their_order(beam):
    port = beam.open("shm_echo:ShmEcho")
    r = random.Random(7)
    echo_all(port, [r.choice([1, 100, 70 * KIB, 2 * MIB + 1]) for _ in range(60)], seed=8)
    port.close()


def test_many_ports_each_with_its_region(beam):
    ports = [beam.open("shm_echo:ShmEcho") for _ in range(4)]
    for i, port in enumerate(ports):
        echo_all(port, [MIB + i, 100 * KIB + i], seed=i)
        assert shm_attached(port)
    for port in ports:
        port.close()


def test_one_at_a_time_each_body_restarts_an_empty_ring(beam):
    # each echo ends with both rings empty at an odd offset: the next body goes back to
    # the front (a path the pipelined tests above take only when they happen to drain)
    port = beam.open("shm_echo:ShmEcho")
    port.control(1, b"outputv")
    for i, n in enumerate(SIZES + SIZES[::-1]):
        echo_all(port, [n], seed=100 + i)
    assert shm_attached(port)
    port.close()


# -- the ring's wrapping and its doorbell (the channel's pipe: an FL_SHM frame on it wakes
# the peer), by checksum: bodies of sizes that are no multiple of 8, some near the ring's
# 8 MiB, whose sum passes its end many times; and one side stopped (SIGSTOP) while the
# other fills the ring, its pipe and the queues behind them --
RING = 8 * MIB
WRAPPING = [RING - 1, 3 * MIB + 7, RING - 9, 65 * KIB + 3, 5 * MIB - 3, RING - 4097,
            64 * KIB + 1, 2 * MIB + 5, 7 * MIB + 13, 100 * KIB + 11] * 2


def checksums(bodies):
    return [(len(b), zlib.crc32(b)) for b in bodies]


def bodies(seed, sizes):
    r = random.Random(seed)
    return [r.randbytes(n) for n in sizes]


def ask_back(port, seed, sizes):
    """The driver is asked for its bodies of those sizes (sent from one callback)."""
    assert port.command(b"send %d " % seed + b" ".join(b"%d" % n for n in sizes))


def got_back(port, seed, sizes):
    """They are received, in order, each right."""
    for want in bodies(seed, sizes):
        tag, got = port.receive(timeout=30)
        assert tag == Atom("data")
        assert (len(got), zlib.crc32(got)) == (len(want), zlib.crc32(want))


def test_odd_sizes_wrap_the_ring_many_times_both_ways(beam):
    assert sum(WRAPPING) > 10 * RING and all(n % 8 for n in WRAPPING)
    port = beam.open("ring_checksums:RingChecksums")
    sent = bodies(11, WRAPPING)
    for data in sent:
        assert port.command(data)
    assert port.call(0, 0) == checksums(sent)
    ask_back(port, 12, WRAPPING)
    got_back(port, 12, WRAPPING)
    assert shm_attached_via_call(port)
    port.close()


def shm_attached_via_call(port):
    """A body of 64 KiB went through: the ring is there (else every test above would pass
    inline and test nothing of it)."""
    assert port.command(b"x" * (64 * KIB))
    return port.call(0, 0) == [(64 * KIB, zlib.crc32(b"x" * (64 * KIB)))]


@contextlib.contextmanager
def stopped(pid, seconds):
    """pid stopped now, continued after seconds (by a timer: the caller may block)."""
    os.kill(pid, signal.SIGSTOP)
    timer = threading.Timer(seconds, os.kill, (pid, signal.SIGCONT))
    timer.start()
    try:
        yield
    finally:
        timer.join()
        os.kill(pid, signal.SIGCONT)


def test_a_stopped_worker_is_woken_and_loses_nothing(beam):
    port = beam.open("ring_checksums:RingChecksums")
    sizes = [MIB + 2 * i + 1 for i in range(30)]        # 3 rings' worth
    sent = bodies(13, sizes)
    with stopped(port.call(1, 0), 1.0):
        # the ring fills, then the pipe, then the driver's queue: the port turns busy and
        # these block until the worker, continued, reads again
        for data in sent:
            assert port.command(data)
    assert port.call(0, 0) == checksums(sent)
    port.close()


def test_a_stopped_node_is_woken_and_loses_nothing(beam):
    with open(f"/proc/{beam.proc.pid}/comm") as f:
        assert f.read().startswith("beam")             # the VM itself, not a launcher
    port = beam.open("ring_checksums:RingChecksums")
    sizes = [MIB + 2 * i + 1 for i in range(30)]
    ask_back(port, 14, sizes)       # in the worker's pipe when this returns
    # the worker sends while the node sleeps: its ring fills, then the pipe, then its queue
    with stopped(beam.proc.pid, 1.0):
        pass
    got_back(port, 14, sizes)
    port.close()


def test_the_ring_set_up_while_a_callback_asks(beam):
    # The first large body's PY_SHM_ATTACH and FL_SHM frame come while output waits for an
    # answer from the emulator (an ask reads the frames meanwhile, setting them aside): the
    # attach must be handled at once, or the body's frame finds no ring to read
    for attempt in range(5):
        port = beam.open("asks_in_output:AsksInOutput")
        sent = [b"small", random.Random(attempt).randbytes(100 * KIB + attempt)]
        for data in sent:
            assert port.command(data)
        for data in sent:
            tag, got = port.receive(timeout=10)
            assert tag == Atom("data") and got.startswith(data + b" ")
        port.close()
