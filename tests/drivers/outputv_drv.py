"""OTP's driver_SUITE_data/outputv_drv.c in Python: outputv echoes the I/O vector it gets
with driver_outputv (no header); output does nothing."""
import pybridge


class OutputvDrv(pybridge.Driver):
    def output(self, data):
        pass

    def outputv(self, iov):
        self.port.outputv(b"", iov)
