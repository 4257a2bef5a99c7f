"""The spawn-port baseline of `make bench`: {packet, 4} frames echoed on stdin/stdout,
as bytes ("raw"), or decoded and re-encoded with erlang-py ("term"), as ErlPort-style
bridges do. Reads large chunks and answers everything it has in one write."""
import os
import struct
import sys

import erlang


def main(mode: str) -> None:
    buf = b""
    term = mode == "term"
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            return
        buf += chunk
        out, off = [], 0
        while len(buf) - off >= 4:
            n = struct.unpack_from(">I", buf, off)[0]
            if len(buf) - off - 4 < n:
                break
            body = buf[off + 4:off + 4 + n]
            off += 4 + n
            if term:
                body = erlang.term_to_binary(erlang.binary_to_term(body))
            out.append(struct.pack(">I", len(body)))
            out.append(body)
        buf = buf[off:]
        if out:
            data = b"".join(out)
            while data:
                data = data[os.write(1, data):]


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "raw")
