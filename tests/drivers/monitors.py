"""monitor_process on the caller (control 1), demonitor (control 2); process_exit reports."""
import pybridge
from pybridge import Atom


class Monitors(pybridge.Driver):
    def start(self, command):
        self.mons = {}

    def control(self, command, data):
        if command == 1:
            pid = self.port.caller()
            m = self.port.monitor_process(pid)
            if m is None:
                return b"noproc"
            assert self.port.get_monitored_process(m) == pid
            self.mons[data] = m
            return b"monitoring"
        if command == 2:
            self.port.demonitor_process(self.mons.pop(data))
            return b"demonitored"
        return None

    def process_exit(self, monitor):
        name = next(k for k, m in self.mons.items() if self.port.compare_monitors(m, monitor) == 0)
        del self.mons[name]
        self.port.output_term((Atom("process_exit"), name, monitor.pid))
