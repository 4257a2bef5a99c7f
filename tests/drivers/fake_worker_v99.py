"""Not a driver: a worker that answers the handshake with protocol 99 (see
pybridge_handshake_tests). Standard library only, so it speaks the raw frames."""
import socket
import struct

ctl = socket.socket(fileno=3)
ctl.recv(65536)
body = (99).to_bytes(2, "big") + b"99.0.0"
ctl.send(struct.pack(">IBBI", len(body) + 6, 0x01, 0, 0) + body)
ctl.recv(65536)
