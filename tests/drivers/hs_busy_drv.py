"""OTP's busy_port_SUITE_data/hs_busy_drv.c in Python (built there as hard_busy_drv and
soft_busy_drv): output answers {Port, caller, driver_caller()}; control $B sets the port
busy, $N not busy, anything else fails the port with einval. HardBusyDrv has no driver
flags; SoftBusyDrv has ERL_DRV_FLAG_SOFT_BUSY, so port_command(P, D, [force]) goes through."""
import errno

import pybridge


class HardBusyDrv(pybridge.Driver):
    # a command is done when port_command returns, as in C (strict mode)
    blocking = True

    def output(self, data):
        self.port.output_term((self.port, pybridge.Atom("caller"), self.port.caller()))

    def control(self, command, data):
        if command == ord("B"):
            self.port.set_busy_port(True)
        elif command == ord("N"):
            self.port.set_busy_port(False)
        else:
            self.port.failure_posix(errno.EINVAL)
        return b""


class SoftBusyDrv(HardBusyDrv):
    flags = pybridge.ERL_DRV_FLAG_SOFT_BUSY
