"""The emulator's side of things: system_info, time, environment, os pid."""
import pybridge


class EmulatorInfo(pybridge.Driver):
    def call(self, command, term):
        p = self.port
        if command == 1:
            return p.system_info()
        if command == 2:
            return (p.monotonic_time("millisecond"), p.time_offset("microsecond"))
        if command == 3:
            key, value = term
            p.putenv(key.decode(), value.decode())
            return p.getenv(key.decode())
        if command == 4:
            return p.getenv(term.decode())
        if command == 5:
            p.set_os_pid(term)
            return True
        if command == 6:
            low, high = term
            return p.busy_msgq_limits(low, high)
