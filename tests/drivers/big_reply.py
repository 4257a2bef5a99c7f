"""Answers control and call with N deterministic bytes (N is the request's data), so that
the cost of a large reply can be measured. Control 1 tells the worker's peak resident size
since control 3 reset it (/proc/self/clear_refs); control 2 the md5 of the N bytes, to
compare with what arrived. start's argument "binary" sets binary mode. start caps the
worker's address space at 1 GiB over its size, so that a regression ends in a MemoryError,
not in an exhausted machine (the worker serves this driver only in its test)."""
import hashlib
import resource

import pybridge


def payload(n):
    """n bytes cycling through 0..255."""
    return (bytes(range(256)) * (n // 256 + 1))[:n]


class BigReply(pybridge.Driver):
    def start(self, command):
        with open("/proc/self/status") as f:
            size = next(int(line.split()[1]) for line in f if line.startswith("VmSize")) << 10
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (min(size + (1 << 30), hard), hard))
        if command == "binary":
            self.port.set_port_control_flags(pybridge.PORT_CONTROL_FLAG_BINARY)

    def control(self, command, data):
        if command == 1:            # VmHWM, KiB
            with open("/proc/self/status") as f:
                return next(line.split()[1] for line in f if line.startswith("VmHWM"))
        if command == 3:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            return None
        if command == 2:
            return hashlib.md5(payload(int(data))).hexdigest()
        return payload(int(data))

    def call(self, command, term):
        return payload(term)
