"""A misbehaving worker: control SEED sends a burst of random frames, some well formed
and many not (truncated, huge lengths, unknown opcodes, bad ETF, bad term programs), to
show the VM survives whatever a worker says. Writes below the port handle on purpose."""
import random
import struct

import pybridge
from pybridge._encode import encode
from pybridge._wire import protocol as P

OPS = [v for k, v in vars(P).items() if k.startswith("DRV_") and v >= 0x80] + [0x7F, 0xFF, 0x00]


def junk(r: random.Random, n: int) -> bytes:
    return bytes(r.getrandbits(8) for _ in range(r.randrange(n)))


def program(r: random.Random) -> bytes:
    steps = []
    for _ in range(r.randrange(6)):
        t = r.choice([P.T_EXT, P.T_PID, P.T_PORT, P.T_NIL, P.T_TUPLE, P.T_LIST, P.T_MAP, 0x55])
        if t == P.T_EXT:
            etf = r.choice([encode((1, b"x")), b"\x83" + junk(r, 20), b"\x83h\x09a\x01", b"\x83"])
            size = r.choice([len(etf), len(etf) + 5, 1 << 31])
            steps.append(bytes((t,)) + P.U32.pack(size) + etf)
        elif t == P.T_PID:
            steps.append(bytes((t,)) + P.U64.pack(r.getrandbits(64)))
        elif t in (P.T_TUPLE, P.T_LIST, P.T_MAP):
            steps.append(bytes((t,)) + P.U32.pack(r.choice([0, 1, 2, 3, 1 << 30])))
        else:
            steps.append(bytes((t,)))
    return b"".join(steps)


def frame(r: random.Random) -> bytes:
    op = r.choice(OPS)
    kind = r.randrange(8)
    if kind == 0:       # a length that lies (short, long, huge)
        body = junk(r, 40)
        return struct.pack(">IBBI", r.choice([0, 3, 5, len(body) + 100, 1 << 31, 0xFFFFFFFF]),
                           op, 0, 0) + body
    if kind == 1:       # term programs
        op = r.choice([P.DRV_OUTPUT_TERM, P.DRV_SEND_TERM])
        to = b"\x00" + P.U64.pack(r.getrandbits(64)) if op == P.DRV_SEND_TERM else b""
        body = to + program(r)
    elif kind == 2:     # header + pieces with lying lengths
        body = (P.U32.pack(r.choice([0, 2, 1 << 20])) + b"hh"
                + P.U32.pack(r.choice([1, 3, 1 << 30])) + b"abc")
        op = r.choice([P.DRV_OUTPUT2, P.DRV_OUTPUT_BINARY, P.DRV_OUTPUTV])
    elif kind == 3:     # shared-memory references in and out of the ring, or malformed
        half = 8 << 20
        body = struct.pack(">QQ", r.choice([0, half - 5, half, 1 << 63, r.getrandbits(64)]),
                           r.choice([0, 10, half, half + 1, 1 << 40, r.getrandbits(64)]))
        body = body[:r.choice([16, 16, 15, 8])]
        return P.frame(op, body, fl=P.FL_SHM | r.getrandbits(1), rid=0)
    else:
        body = junk(r, 64)
    return P.frame(op, body, fl=r.getrandbits(8), rid=r.choice([0, 1, 2, r.getrandbits(32)]))


class Garbage(pybridge.Driver):
    def control(self, command, data):
        r = random.Random(command)
        # the port's frame writer, below its send(): these frames need no checks
        writer = self.port._b.send.__self__
        # the driver sets its shared memory up first, so FL_SHM frames meet a real ring
        writer.out.append(P.frame(P.DRV_SHM_WANT, b""))
        for _ in range(int(data or b"100")):
            writer.out.append(frame(r))
        writer.queued()
        return b"sent"
