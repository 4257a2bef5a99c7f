"""OTP's driver_SUITE_data/env_drv.c in Python: control 0 is erl_drv_putenv of the key and
value in its data (two length bytes, then both), answering 0; control 1 compares
erl_drv_getenv with the value: 0 equal, 1 not, 127 when the value is over the C driver's
256-byte buffer, 255 when unset."""
import pybridge

BUFFER = 256


class EnvDrv(pybridge.Driver):
    def control(self, command, data):
        klen, vlen = data[0], data[1]
        key = data[2:2 + klen].decode()
        value = data[2 + klen:2 + klen + vlen].decode()
        if command == 0:
            self.port.putenv(key, value)
            return b"\0"
        stored = self.port.getenv(key)
        if stored is None:
            return b"\xff"
        if len(stored.encode()) >= BUFFER:
            return b"\x7f"
        return b"\0" if stored == value else b"\1"
