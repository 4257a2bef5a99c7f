"""The real worker refuses a node that speaks another protocol version."""
import socket
import struct
import subprocess
import sys

import pybridge._wire.protocol as P


def handshake(proto: int):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    worker = subprocess.Popen([sys.executable, "-m", "pybridge", "worker",
                               "--fd", str(theirs.fileno())],
                              pass_fds=[theirs.fileno()], stderr=subprocess.DEVNULL)
    theirs.close()
    ours.send(P.frame(P.CTL_HELLO, proto.to_bytes(2, "big") + b"test"))
    ours.settimeout(10)
    return worker, ours


def test_matching_version_is_answered():
    worker, ctl = handshake(P.PROTOCOL_VERSION)
    reply = ctl.recv(65536)
    n, op, fl, rid = struct.unpack_from(">IBBI", reply)
    assert op == P.CTL_HELLO and int.from_bytes(reply[10:12], "big") == P.PROTOCOL_VERSION
    ctl.close()                      # the node goes: the worker must exit on its own
    assert worker.wait(timeout=10) == 0


def test_mismatched_version_is_refused_with_a_log_naming_what_to_upgrade():
    worker, ctl = handshake(P.PROTOCOL_VERSION + 1)
    frames = []
    while True:
        m = ctl.recv(65536)
        if not m:
            break
        frames.append(m)
    assert worker.wait(timeout=10) == 3
    ops = [f[4] for f in frames]
    assert P.CTL_HELLO not in ops and P.CTL_LOG in ops
    from pybridge._decode import decode
    level, msg, meta = decode(frames[ops.index(P.CTL_LOG)][10:])
    assert level.name == "critical" and b"upgrade the pybridge Python package" in msg
