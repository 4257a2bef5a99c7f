"""Large bodies through the port's shared memory (docs/PROTOCOL.md, Shared memory): odd
sizes on both sides of the 64 KiB threshold and of the 8 MiB ring, enough of them to wrap
the rings several times, mixed with small ones, every output form; bytes and order kept."""
import random

import pytest

from pybridge import Atom, ImproperList

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
