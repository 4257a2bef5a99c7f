"""OTP's driver_SUITE_data/caller_drv.c in Python: every callback outputs
{caller, Port, Callback, driver_caller()} (erl_drv_output_term); call echoes its term.
CallerDrv has output, CallerDrvV outputv (caller_drv with CALLER_DRV_USE_OUTPUTV=true)."""
import pybridge


class CallerDrv(pybridge.Driver):
    flags = pybridge.ERL_DRV_FLAG_USE_PORT_LOCKING

    def send_caller(self, func):
        self.port.output_term((pybridge.Atom("caller"), self.port, pybridge.Atom(func),
                               self.port.caller()))

    def start(self, command):
        self.send_caller("start")

    def output(self, data):
        self.send_caller("output")

    def control(self, command, data):
        self.send_caller("control")
        return b""

    def call(self, command, term):
        self.send_caller("call")
        return term


class CallerDrvV(CallerDrv):
    def outputv(self, iov):
        self.send_caller("outputv")
