"""Keeps the pids that called it and looks callers up among them in later blocking
callbacks, as OTP's monitor_drv keeps its list of monitored pids: control(0) remembers
the caller, control(1) says whether the caller is known (b"yes"/b"no", by `in` on a dict
keyed by pid and on a list); call(0, Term) compares the caller with a pid sent in Term;
call(1, _) returns the remembered pids, in the order they came."""
import pybridge


class RemembersCallers(pybridge.Driver):
    def start(self, command):
        self.seen = {}
        self.order = []

    def control(self, command, data):
        me = self.port.caller()
        if command == 0:
            self.seen[me] = len(self.seen)
            self.order.append(me)
            return b""
        known = me in self.seen and me in self.order and self.order.count(me) >= 1
        return b"yes" if known else b"no"

    def call(self, command, term):
        me = self.port.caller()
        if command == 0:
            return (me == term, term == me, term in self.seen, hash(me) == hash(term))
        return self.order
