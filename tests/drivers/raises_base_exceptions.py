"""Each callback raises the BaseException its data names: b"exit" SystemExit(3),
b"interrupt" KeyboardInterrupt, b"bare" a subclass of BaseException only, b"timeout"
pybridge.Timeout (Erlang must see it named pybridge.Timeout, not by its private module);
start's argument names what stop raises. Otherwise control and call answer b"ok" / ok,
output echoes."""
import pybridge


class Bare(BaseException):
    pass


def raise_for(what):
    if what in (b"exit", "exit"):
        raise SystemExit(3)
    if what in (b"interrupt", "interrupt"):
        raise KeyboardInterrupt
    if what in (b"bare", "bare"):
        raise Bare("bare")
    if what in (b"timeout", "timeout"):
        raise pybridge.Timeout("timeout")


class DriverLevel(pybridge.Driver):
    def start(self, command):
        self.on_stop = command

    def control(self, command, data):
        raise_for(data)
        return b"ok"

    def call(self, command, term):
        raise_for(term)
        return pybridge.Atom("ok")

    def output(self, data):
        raise_for(data)
        self.port.output(data)

    def stop(self):
        raise_for(self.on_stop)


class PortLevel(DriverLevel):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING
