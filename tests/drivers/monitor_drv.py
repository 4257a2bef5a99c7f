"""OTP's driver_SUITE_data/monitor_drv.c in Python: it keeps a list of monitors of its
callers, each with the caller's pid, and looks callers up in it in later controls (pids
compared with ==). I_AM_IPID names who gets {monitor_fired, Port, Pid}; MONITOR_ME and
DEMONITOR_ME (de)monitor the caller; MONITOR_ME_LATER records the caller under an id that
DO_DELAYED_MONITOR monitors later. demonitor_process tells nothing back, so the C
driver's "gone" answers (the process died meanwhile) are "ok" here; the suite never
gets there."""
import pybridge

I_AM_IPID, MONITOR_ME, DEMONITOR_ME, MONITOR_ME_LATER, DO_DELAYED_MONITOR = range(1, 6)


class OneMonitor:
    def __init__(self, pid, later_id):
        self.pid = pid
        self.later_id = later_id
        self.mon = None


class MonitorDrv(pybridge.Driver):
    def start(self, command):
        self.ipid = None
        self.later_counter = 0
        self.monitors = []          # newest first, as the C driver's list

    def process_exit(self, monitor):
        for om in self.monitors:
            if om.mon is not None and pybridge.Port.compare_monitors(om.mon, monitor) == 0:
                self.monitors.remove(om)
                self.port.send_term(self.ipid, (pybridge.Atom("monitor_fired"), self.port,
                                                om.pid))
                return

    def control(self, command, data):
        return self.answer(command, data).encode()

    def answer(self, command, data):
        p = self.port
        if command == I_AM_IPID:
            self.ipid = p.caller()
            return "ok"
        if command == MONITOR_ME:
            om = OneMonitor(p.caller(), 0)
            om.mon = p.monitor_process(om.pid)
            if om.mon is None:
                return "noproc"
            self.monitors.insert(0, om)
            return "ok"
        if command == DEMONITOR_ME:
            me = p.caller()
            mine = [om for om in self.monitors if om.pid == me]
            if not mine:
                return "not_monitored"
            q = mine[-1]
            self.monitors.remove(q)
            more = "_but_more" if len(mine) > 1 else ""
            if q.later_id > 0:
                return "delayd_but_more" if more else "delayed"
            p.demonitor_process(q.mon)
            return "ok" + more
        if command == MONITOR_ME_LATER:
            self.later_counter += 1
            self.monitors.insert(0, OneMonitor(p.caller(), self.later_counter))
            return f"ok:{self.later_counter}"
        if command == DO_DELAYED_MONITOR:
            wanted = int(data.decode() or "0")
            om = next((o for o in self.monitors if o.later_id and o.later_id == wanted), None)
            if om is None:
                return "not_found"
            om.mon = p.monitor_process(om.pid)
            if om.mon is None:
                self.monitors.remove(om)
                return "noproc"
            om.later_id = 0
            return "ok"
        return "unknown_op"
