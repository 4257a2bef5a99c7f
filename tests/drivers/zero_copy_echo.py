"""zero_copy = True: output(data) gets a read-only memoryview; the driver says what it got
(b"Type Readonly Len"), then echoes it. PortLocked: the same on a port thread."""
import pybridge


class ZeroCopyEcho(pybridge.Driver):
    zero_copy = True

    def output(self, data):
        self.port.output(f"{type(data).__name__} {data.readonly} {len(data)}".encode())
        self.port.output(data)


class PortLocked(ZeroCopyEcho):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING
