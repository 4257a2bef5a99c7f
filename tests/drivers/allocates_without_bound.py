"""A driver whose control allocates 16 MiB blocks until memory runs out; the test opens it
in a worker group with a memory_limit, so the bound is the group's RLIMIT_AS."""
import pybridge


class AllocatesWithoutBound(pybridge.Driver):
    def control(self, command, data):
        blocks = []
        while True:
            blocks.append(bytearray(16 << 20))
